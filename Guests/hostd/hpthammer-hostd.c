/*
 * hpthammer-hostd: the raw backend's syscalls, run on the host under test.
 *
 * Swift has no ppc64le toolchain, so the raw /dev/kvm backend runs on a controller machine
 * and sends its syscalls here (over ssh: stdin/stdout). This program does only what the
 * backend's Syscalls seam does: open, close, ioctl, mmap, munmap, madvise, move_pages, plus
 * memory reads and writes, the host's memory nodes and KVM_RUN with the kvm_run page carried
 * both ways. Everything else (the VMM, the payload, the hammer) stays in Swift. Static, no
 * dependencies: built with powerpc64le-linux-gnu-gcc -static (or gcc here, for tests against
 * this machine's /dev/kvm).
 *
 * Frames, little-endian (both ends are LE: x86_64/aarch64 controllers, ppc64le hosts):
 *   request:  u32 magic 'HHRQ' | u32 tag | u32 op | i32 fd | u64 a | u64 b | u32 len | len bytes
 *             (a 36-byte header)
 *   response: u32 magic 'HHRS' | u32 tag | i64 ret | i32 err | u32 len | len bytes
 * Each request runs on a thread of its own, so a vCPU blocked in KVM_RUN does not hold up
 * the PREPARE/COMMIT the hammer sends meanwhile; answers go back in completion order, by tag.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#define MAGIC_RQ 0x51524848u /* "HHRQ" */
#define MAGIC_RS 0x53524848u /* "HHRS" */
#define MAX_PAYLOAD (64u << 20)

enum op {
	OP_HELLO = 0,      /* -> "hpthammer-hostd 1 <machine>" */
	OP_OPEN = 1,       /* data: path -> fd */
	OP_CLOSE = 2,      /* fd */
	OP_IOCTL_PTR = 3,  /* fd, a=request, data: arg in -> arg out */
	OP_IOCTL_VAL = 4,  /* fd, a=request, b=value */
	OP_MMAP_ANON = 5,  /* a=length -> ret=address */
	OP_MMAP_SHARED = 6,/* fd, a=length, b=offset -> ret=address */
	OP_MUNMAP = 7,     /* a=address, b=length */
	OP_MADVISE = 8,    /* a=address, b=length, fd=advice */
	OP_WRITE_MEM = 9,  /* a=address, data */
	OP_READ_MEM = 10,  /* a=address, b=length -> data */
	OP_KVM_RUN = 11,   /* fd, a=request, b=kvm_run address, data: kvm_run bytes in -> out */
	OP_ONE_REG = 12,   /* fd, a=request, b=register id, data: value in -> value out */
	OP_MMAP_SHARED_ANON = 13, /* a=length -> ret=address (guest RAM: shmem, survives DONTNEED) */
	OP_KICK = 14,      /* fd: a vCPU; its KVM_RUN now (or its next one) returns EINTR */
	OP_MOVE_PAGES = 15,   /* a=address, b=length, fd=node -> ret=pages moved there */
	OP_MEMORY_NODES = 16, /* -> data: /sys/devices/system/node/has_memory ("0-1") */
};

struct request {
	uint32_t tag, op;
	int32_t fd;
	uint64_t a, b;
	uint32_t len;
	uint8_t *data;
};

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* OP_KICK: which thread is inside KVM_RUN on a vCPU fd, and kicks not yet delivered. A guest
 * that never exits to userspace (its payload waits for a vCPU the controller stopped running;
 * the host's kernel misbehaves) would otherwise keep the controller's stop waiting. A kick that
 * finds no thread inside is kept for the next KVM_RUN, which returns EINTR at once. */
#define MAX_VCPU_FD 4096
static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t run_thread[MAX_VCPU_FD];
static uint8_t run_inside[MAX_VCPU_FD], run_kicked[MAX_VCPU_FD];

static void on_kick(int sig) { (void)sig; }

static int64_t kvm_run(int fd, unsigned long request)
{
	int tracked = fd >= 0 && fd < MAX_VCPU_FD;
	int64_t ret;
	int err;
	pthread_mutex_lock(&run_lock);
	if (tracked && run_kicked[fd]) {
		run_kicked[fd] = 0;
		pthread_mutex_unlock(&run_lock);
		errno = EINTR;
		return -1;
	}
	if (tracked) {
		run_thread[fd] = pthread_self();
		run_inside[fd] = 1;
	}
	pthread_mutex_unlock(&run_lock);
	ret = ioctl(fd, request, 0);
	err = errno;
	pthread_mutex_lock(&run_lock);
	if (tracked) {
		run_inside[fd] = 0;
		if (ret < 0 && err == EINTR)
			run_kicked[fd] = 0;
	}
	pthread_mutex_unlock(&run_lock);
	errno = err;
	return ret;
}

static int64_t kick(int fd)
{
	if (fd < 0 || fd >= MAX_VCPU_FD) {
		errno = EBADF;
		return -1;
	}
	pthread_mutex_lock(&run_lock);
	run_kicked[fd] = 1;
	if (run_inside[fd])
		pthread_kill(run_thread[fd], SIGUSR1);
	pthread_mutex_unlock(&run_lock);
	return 0;
}

static int read_full(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n) {
		ssize_t r = write(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void respond(uint32_t tag, int64_t ret, int32_t err, const void *data, uint32_t len)
{
	uint8_t hdr[24];
	uint32_t magic = MAGIC_RS;
	memcpy(hdr, &magic, 4);
	memcpy(hdr + 4, &tag, 4);
	memcpy(hdr + 8, &ret, 8);
	memcpy(hdr + 16, &err, 4);
	memcpy(hdr + 20, &len, 4);
	pthread_mutex_lock(&out_lock);
	if (write_full(1, hdr, sizeof hdr) || (len && write_full(1, data, len))) {
		/* The controller is gone: nothing left to serve. */
		_exit(0);
	}
	pthread_mutex_unlock(&out_lock);
}

#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1) /* numaif.h: pages mapped by this process only */
#endif

/* move_pages(2) of every page of [addr, addr+len) to node; how many moved (present on
 * another node before, on node after). */
static int64_t move_to_node(void *addr, uint64_t len, int node)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned long n = (len + page - 1) / page, i;
	void **pages = calloc(n, sizeof *pages);
	int *nodes = calloc(n, sizeof *nodes), *status = calloc(n, sizeof *status);
	int *before = calloc(n, sizeof *before);
	int64_t ret = -1;
	int err = ENOMEM;

	if (pages && nodes && status && before) {
		for (i = 0; i < n; i++) {
			pages[i] = (char *)addr + i * page;
			nodes[i] = node;
			status[i] = -1;
		}
		/* nodes NULL: where each page is now (a negative errno if it is not present). */
		if (syscall(SYS_move_pages, 0, n, pages, NULL, before, 0) >= 0 &&
		    syscall(SYS_move_pages, 0, n, pages, nodes, status, MPOL_MF_MOVE) >= 0) {
			for (ret = 0, i = 0; i < n; i++)
				ret += before[i] >= 0 && before[i] != node && status[i] == node;
		}
		err = errno;
	}
	free(pages);
	free(nodes);
	free(status);
	free(before);
	errno = err;
	return ret;
}

/* The node list into *out (malloc'd), its length in ret. */
static int64_t memory_nodes(uint8_t **out)
{
	int fd = open("/sys/devices/system/node/has_memory", O_RDONLY | O_CLOEXEC);
	uint8_t *buf = calloc(1, 4096);
	ssize_t n;

	if (!buf)
		return -1;
	if (fd < 0) {
		/* No node directory (no CONFIG_NUMA): one node, 0. */
		if (errno != ENOENT) {
			free(buf);
			return -1;
		}
		memcpy(buf, "0\n", 2);
		n = 2;
	} else {
		n = read(fd, buf, 4095);
		close(fd);
	}
	if (n < 0) {
		free(buf);
		return -1;
	}
	*out = buf;
	return n;
}

static void *serve(void *arg)
{
	struct request *rq = arg;
	int64_t ret = 0;
	int32_t err = 0;
	void *out = NULL;
	uint32_t out_len = 0;

	switch (rq->op) {
	case OP_HELLO: {
		static char hello[160];
		struct utsname u;
		if (uname(&u))
			strcpy(u.machine, "?");
		snprintf(hello, sizeof hello, "hpthammer-hostd 1 %s", u.machine);
		out = hello;
		out_len = (uint32_t)strlen(hello);
		break;
	}
	case OP_OPEN: {
		char *path = calloc(1, rq->len + 1);
		memcpy(path, rq->data, rq->len);
		ret = open(path, O_RDWR | O_CLOEXEC);
		free(path);
		break;
	}
	case OP_CLOSE:
		ret = close(rq->fd);
		break;
	case OP_IOCTL_PTR:
		ret = ioctl(rq->fd, (unsigned long)rq->a, rq->data);
		out = rq->data;
		out_len = rq->len;
		break;
	case OP_IOCTL_VAL:
		ret = ioctl(rq->fd, (unsigned long)rq->a, (unsigned long)rq->b);
		break;
	case OP_MMAP_ANON: {
		void *p = mmap(NULL, rq->a, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		ret = p == MAP_FAILED ? -1 : (int64_t)(uintptr_t)p;
		break;
	}
	case OP_MMAP_SHARED_ANON: {
		void *p = mmap(NULL, rq->a, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		ret = p == MAP_FAILED ? -1 : (int64_t)(uintptr_t)p;
		break;
	}
	case OP_MMAP_SHARED: {
		void *p = mmap(NULL, rq->a, PROT_READ | PROT_WRITE, MAP_SHARED, rq->fd, (off_t)rq->b);
		ret = p == MAP_FAILED ? -1 : (int64_t)(uintptr_t)p;
		break;
	}
	case OP_MUNMAP:
		ret = munmap((void *)(uintptr_t)rq->a, rq->b);
		break;
	case OP_MADVISE:
		ret = madvise((void *)(uintptr_t)rq->a, rq->b, rq->fd);
		break;
	case OP_WRITE_MEM:
		memcpy((void *)(uintptr_t)rq->a, rq->data, rq->len);
		break;
	case OP_READ_MEM:
		if (rq->b > MAX_PAYLOAD) {
			ret = -1;
			errno = EINVAL;
			break;
		}
		out = (void *)(uintptr_t)rq->a;
		out_len = (uint32_t)rq->b;
		break;
	case OP_KVM_RUN: {
		/* The controller's copy of kvm_run (hcall return values, immediate_exit) goes
		 * in; the kernel's comes back after the exit. */
		uint8_t *run = (uint8_t *)(uintptr_t)rq->b;
		memcpy(run, rq->data, rq->len);
		ret = kvm_run(rq->fd, (unsigned long)rq->a);
		out = run;
		out_len = rq->len;
		break;
	}
	case OP_ONE_REG: {
		/* struct kvm_one_reg { u64 id; u64 addr; }: addr points into this process. */
		uint64_t reg[2] = {rq->b, (uint64_t)(uintptr_t)rq->data};
		ret = ioctl(rq->fd, (unsigned long)rq->a, reg);
		out = rq->data;
		out_len = rq->len;
		break;
	}
	case OP_KICK:
		ret = kick(rq->fd);
		break;
	case OP_MOVE_PAGES:
		ret = move_to_node((void *)(uintptr_t)rq->a, rq->b, rq->fd);
		break;
	case OP_MEMORY_NODES:
		free(rq->data);
		rq->data = NULL;
		ret = memory_nodes(&rq->data);
		out = rq->data;
		out_len = ret > 0 ? (uint32_t)ret : 0;
		break;
	default:
		ret = -1;
		errno = ENOSYS;
	}
	if (ret < 0) {
		err = errno;
		out = NULL;
		out_len = 0;
	}
	respond(rq->tag, ret, err, out, out_len);
	free(rq->data);
	free(rq);
	return NULL;
}

int main(void)
{
	pthread_attr_t attr;
	/* SIGUSR1 interrupts a KVM_RUN (no SA_RESTART) and does nothing else. */
	struct sigaction sa = {.sa_handler = on_kick};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	/* A mask blocking it is inherited through exec (a parent's worker thread started us). */
	sigset_t kickset;
	sigemptyset(&kickset);
	sigaddset(&kickset, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &kickset, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 << 10);
	for (;;) {
		uint8_t hdr[36];
		uint32_t magic;
		if (read_full(0, hdr, sizeof hdr))
			return 0;
		memcpy(&magic, hdr, 4);
		if (magic != MAGIC_RQ) {
			fprintf(stderr, "hpthammer-hostd: bad frame (magic %08x)\n", magic);
			return 2;
		}
		struct request *rq = calloc(1, sizeof *rq);
		memcpy(&rq->tag, hdr + 4, 4);
		memcpy(&rq->op, hdr + 8, 4);
		memcpy(&rq->fd, hdr + 12, 4);
		memcpy(&rq->a, hdr + 16, 8);
		memcpy(&rq->b, hdr + 24, 8);
		memcpy(&rq->len, hdr + 32, 4);
		if (rq->len > MAX_PAYLOAD) {
			fprintf(stderr, "hpthammer-hostd: frame too large (%u bytes)\n", rq->len);
			return 2;
		}
		rq->data = malloc(rq->len ? rq->len : 1);
		if (rq->len && read_full(0, rq->data, rq->len))
			return 0;
		pthread_t t;
		if (pthread_create(&t, &attr, serve, rq)) {
			respond(rq->tag, -1, EAGAIN, NULL, 0);
			free(rq->data);
			free(rq);
		}
	}
}
