#ifndef CLIBVIRT_H
#define CLIBVIRT_H

// libvirt's C API, loaded with dlopen when the first connection or event loop needs it
// rather than linked: a command that never talks to libvirt (scan, sim, results, bisect)
// does not load libvirt and the 52 libraries it pulls in (7 ms of every start), and runs on
// a machine where libvirt is not installed. The headers (libvirt-dev) give the types
// and constants; `clibvirt_functions` holds the functions the harness calls.
#include <stddef.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

// Every libvirt function the harness calls: one entry here, one field below.
#define CLIBVIRT_FUNCTIONS(X)                                                                  \
  X(virConnectClose)                                                                           \
  X(virConnectDomainEventDeregisterAny)                                                        \
  X(virConnectDomainEventRegisterAny)                                                          \
  X(virConnectGetCapabilities)                                                                 \
  X(virConnectGetHostname)                                                                     \
  X(virConnectGetLibVersion)                                                                   \
  X(virConnectIsAlive)                                                                         \
  X(virConnectListAllDomains)                                                                  \
  X(virConnectOpen)                                                                            \
  X(virDomainAttachDeviceFlags)                                                                \
  X(virDomainCreate)                                                                           \
  X(virDomainDefineXML)                                                                        \
  X(virDomainDestroy)                                                                          \
  X(virDomainDetachDeviceFlags)                                                                \
  X(virDomainFree)                                                                             \
  X(virDomainGetMetadata)                                                                      \
  X(virDomainGetName)                                                                          \
  X(virDomainGetState)                                                                         \
  X(virDomainGetXMLDesc)                                                                       \
  X(virDomainLookupByName)                                                                     \
  X(virDomainMemoryStats)                                                                      \
  X(virDomainOpenConsole)                                                                      \
  X(virDomainSetMemoryFlags)                                                                   \
  X(virDomainUndefine)                                                                         \
  X(virEventRegisterDefaultImpl)                                                               \
  X(virEventRunDefaultImpl)                                                                    \
  X(virFreeError)                                                                              \
  X(virSaveLastError)                                                                          \
  X(virSetErrorFunc)                                                                           \
  X(virStreamAbort)                                                                            \
  X(virStreamFree)                                                                             \
  X(virStreamNew)                                                                              \
  X(virStreamRecv)                                                                             \
  X(virStreamSend)

// Each field has its function's own type, from libvirt's header.
#define CLIBVIRT_FIELD(name) __typeof__(name) *name;
struct clibvirt_functions {
  CLIBVIRT_FUNCTIONS(CLIBVIRT_FIELD)
};
#undef CLIBVIRT_FIELD

/// Opens `soname` (libvirt.so.0) and fills `functions`: 0, or -1 with dlerror's message in
/// `error` (a library that is missing, or lacks one of the functions).
int clibvirt_load(const char *soname, struct clibvirt_functions *functions, char *error,
                  size_t size);

#endif
