#include "clibvirt.h"

#include <dlfcn.h>
#include <stdio.h>

int clibvirt_load(const char *soname, struct clibvirt_functions *functions, char *error,
                  size_t size) {
  // RTLD_NOW: a libvirt too old for one of the functions is refused here, not at a call.
  void *library = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (library == NULL) {
    snprintf(error, size, "%s", dlerror());
    return -1;
  }
#define CLIBVIRT_LOOKUP(name)                                                                  \
  functions->name = (__typeof__(name) *)dlsym(library, #name);                                 \
  if (functions->name == NULL) {                                                               \
    snprintf(error, size, "%s has no %s", soname, #name);                                      \
    return -1;                                                                                 \
  }
  CLIBVIRT_FUNCTIONS(CLIBVIRT_LOOKUP)
#undef CLIBVIRT_LOOKUP
  return 0;
}
