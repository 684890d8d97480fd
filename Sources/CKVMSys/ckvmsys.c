// Empty: the shim is header-only (static inline), but SwiftPM needs a source file per C target.
#include "ckvmsys.h"
