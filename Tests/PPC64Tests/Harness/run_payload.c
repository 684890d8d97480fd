// Runs the harness's guest payload as a ppc64le user program (under qemu-ppc64le-static), to
// show that its loop really writes and verifies memory. The payload is built with
// PayloadReport.trap: each report is a `trap`, which this program catches (SIGTRAP), printing
// r3...r8 and stepping over it.
//
// usage: run_payload IMAGE LOAD_ADDR BASE SIZE REPORTS CORRUPT_AT CORRUPT_OFFSET [TAKEN_TABLE]
//   After report CORRUPT_AT, the dword at BASE+CORRUPT_OFFSET is overwritten with 0xdead, as
//   a stale translation would; with TAKEN_TABLE (an address inside the image's 64 KiB), it is
//   taken away instead, as the host's MADV_REMOVE does: set to 0, and its dword in the table
//   set to 1 first. After REPORTS reports, every page's first dword is printed, then the
//   table's dwords.
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

static uint64_t base, size, page_bytes;
static long reports, corrupt_at, corrupt_offset, seen;
static uint64_t taken_table;

static void on_trap(int sig, siginfo_t *info, void *ctx) {
  (void)sig;
  (void)info;
  ucontext_t *uc = ctx;
  unsigned long *r = uc->uc_mcontext.gp_regs;
  seen++;
  printf("report %lu %lu %lu 0x%lx 0x%lx 0x%lx %lu %lu %lu\n", r[3], r[4], r[5], r[6], r[7], r[8],
         r[9], r[10], r[11]);
  if (seen == corrupt_at && taken_table) {
    ((volatile uint64_t *)taken_table)[corrupt_offset / page_bytes] = 1;
    *(volatile uint64_t *)(base + corrupt_offset) = 0;
  } else if (seen == corrupt_at) {
    *(volatile uint64_t *)(base + corrupt_offset) = 0xdead;
  }
  if (seen == reports) {
    for (uint64_t off = 0; off < size; off += page_bytes)
      printf("page 0x%lx 0x%lx\n", (unsigned long)(base + off),
             (unsigned long)*(uint64_t *)(base + off));
    for (uint64_t i = 0; taken_table && i < size / page_bytes; i++)
      printf("taken %lu %lu\n", (unsigned long)i, (unsigned long)((uint64_t *)taken_table)[i]);
    fflush(stdout);
    _exit(0);
  }
  r[32] += 4;  // PT_NIP: go on after the trap
}

int main(int argc, char **argv) {
  if (argc != 8 && argc != 9) {
    fprintf(stderr, "usage: %s IMAGE LOAD BASE SIZE REPORTS CORRUPT_AT CORRUPT_OFFSET [TABLE]\n",
            argv[0]);
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) { perror(argv[1]); return 2; }
  static unsigned char image[65536];
  size_t n = fread(image, 1, sizeof image, f);
  fclose(f);
  uint64_t load = strtoull(argv[2], 0, 0);
  base = strtoull(argv[3], 0, 0);
  size = strtoull(argv[4], 0, 0);
  reports = strtol(argv[5], 0, 0);
  corrupt_at = strtol(argv[6], 0, 0);
  corrupt_offset = strtol(argv[7], 0, 0);
  taken_table = argc == 9 ? strtoull(argv[8], 0, 0) : 0;
  memcpy(&page_bytes, image + 40, 8);  // parameter block: pageBytes
  void *code = mmap((void *)load, 65536, PROT_READ | PROT_WRITE | PROT_EXEC,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  void *data = mmap((void *)base, size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (code == MAP_FAILED || data == MAP_FAILED) { perror("mmap"); return 2; }
  memcpy(code, image, n);
  __builtin___clear_cache((char *)code, (char *)code + n);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_trap;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGTRAP, &sa, 0);
  uint64_t block_size = 128;  // Payload.parameterBlockSize
  void (*entry)(void) = (void (*)(void))(load + block_size);
  entry();
  return 3;  // the payload never returns
}
