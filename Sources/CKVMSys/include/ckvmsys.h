// ioctl(2) is variadic in C, and Swift cannot call variadic C functions. These fixed-argument
// wrappers are the only way KVMSys reaches it; everything else goes through Glibc directly.
#ifndef CKVMSYS_H
#define CKVMSYS_H
#include <sys/ioctl.h>

static inline int ckvmsys_ioctl_ptr(int fd, unsigned long request, void *arg) {
  return ioctl(fd, request, arg);
}

static inline int ckvmsys_ioctl_value(int fd, unsigned long request, unsigned long value) {
  return ioctl(fd, request, value);
}
#endif
