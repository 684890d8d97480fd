// ioctl(2) and syscall(2) are variadic in C, and Swift cannot call variadic C functions. These
// fixed-argument wrappers are the only way KVMSys reaches them; everything else goes through
// Glibc directly.
#ifndef CKVMSYS_H
#define CKVMSYS_H
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline int ckvmsys_ioctl_ptr(int fd, unsigned long request, void *arg) {
  return ioctl(fd, request, arg);
}

static inline int ckvmsys_ioctl_value(int fd, unsigned long request, unsigned long value) {
  return ioctl(fd, request, value);
}
/* move_pages(2) of this process's pages (glibc has no wrapper; libnuma's is not a dependency). */
static inline long ckvmsys_move_pages(unsigned long count, void **pages, const int *nodes,
                                      int *status, int flags) {
  return syscall(SYS_move_pages, 0, count, pages, nodes, status, flags);
}
#endif
