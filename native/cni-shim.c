/*
 * tern CNI shim: the fast path in front of the TypeScript node daemon.
 *
 * Node's own start-up (70-90 ms) is longer than a whole ADD of the Go
 * reference plugins, so the binary a runtime executes is this small C
 * program. It forwards the invocation (CNI_* environment and stdin) over the
 * daemon's unix socket and prints the daemon's answer. All CNI logic stays in
 * TypeScript. When no daemon answers, it execs the standalone Node plugin
 * (`tern-standalone` beside it) with the same stdin, so the plugin works
 * without the daemon too.
 *
 * The socket is the config's top-level "cni_socket" string, else
 * /run/tern/cni.sock.
 *
 * Wire format (all integers u32 little-endian):
 *   request:  "TCNI" nenv { len bytes("KEY=VALUE") }*nenv len stdin
 *   response: exit_code len stdout
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_STDIN (1u << 20)
#define DEFAULT_SOCKET "/run/tern/cni.sock"

extern char **environ;

static int write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    p += w; n -= (size_t)w;
  }
  return 0;
}

static int read_all(int fd, void *buf, size_t n) {
  char *p = buf;
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r < 0) { if (errno == EINTR) continue; return -1; }
    if (r == 0) return -1;
    p += r; n -= (size_t)r;
  }
  return 0;
}

static char *put_u32(char *p, uint32_t v) {
  p[0] = (char)(v & 0xff); p[1] = (char)((v >> 8) & 0xff); p[2] = (char)((v >> 16) & 0xff); p[3] = (char)((v >> 24) & 0xff);
  return p + 4;
}

static int get_u32(int fd, uint32_t *v) {
  unsigned char b[4];
  if (read_all(fd, b, 4)) return -1;
  *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
  return 0;
}

/* The value of a top-level-looking "cni_socket": "..." string, without escapes. */
static void socket_path(const char *conf, size_t len, char *out, size_t outlen) {
  snprintf(out, outlen, "%s", DEFAULT_SOCKET);
  const char *key = "\"cni_socket\"";
  const char *p = memmem(conf, len, key, strlen(key));
  if (!p) return;
  p += strlen(key);
  const char *end = conf + len;
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ':')) p++;
  if (p >= end || *p != '"') return;
  p++;
  const char *q = p;
  while (q < end && *q != '"' && *q != '\\') q++;
  if (q >= end || *q != '"' || (size_t)(q - p) >= outlen || q == p) return;
  memcpy(out, p, (size_t)(q - p));
  out[q - p] = 0;
}

/* No daemon: run the standalone Node plugin with the same stdin. */
static void exec_standalone(const char *stdin_buf, size_t n, char **argv) {
  char self[PATH_MAX - 64], target[PATH_MAX];
  ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
  if (l < 0) { perror("tern: readlink"); exit(1); }
  self[l] = 0;
  char *slash = strrchr(self, '/');
  if (slash) *slash = 0;
  snprintf(target, sizeof target, "%s/tern-standalone", self);
  int fd = memfd_create("tern-stdin", 0);
  if (fd < 0 || write_all(fd, stdin_buf, n) || lseek(fd, 0, SEEK_SET) < 0 || dup2(fd, 0) < 0) {
    perror("tern: stdin for standalone");
    exit(1);
  }
  close(fd);
  argv[0] = target;
  execv(target, argv);
  fprintf(stdout, "{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":\"tern: cannot exec %s: %s\"}\n", target, strerror(errno));
  exit(1);
}

int main(int argc, char **argv) {
  (void)argc;
  /* Read all of stdin, keeping at most MAX_STDIN + 1 bytes: enough for the
   * daemon to see (and reject) an oversized config, while the writer is
   * drained so it never gets EPIPE. */
  size_t cap = 65536, n = 0;
  char *in = malloc(cap);
  if (!in) return 1;
  for (;;) {
    if (n == cap && cap < MAX_STDIN + 1) {
      cap = cap * 2 > MAX_STDIN + 1 ? MAX_STDIN + 1 : cap * 2;
      char *g = realloc(in, cap);
      if (!g) return 1;
      in = g;
    }
    char scratch[65536];
    char *dst = n < cap ? in + n : scratch;
    size_t room = n < cap ? cap - n : sizeof scratch;
    ssize_t r = read(0, dst, room);
    if (r < 0) { if (errno == EINTR) continue; break; }
    if (r == 0) break;
    if (dst != scratch) n += (size_t)r;
  }

  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  socket_path(in, n, sa.sun_path, sizeof sa.sun_path);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if (s >= 0) close(s);
    exec_standalone(in, n, argv);
  }

  const char *phase = "sending the request to";
  errno = 0;
  /* The whole request in one buffer and one write: one wakeup of the daemon, not two per variable. */
  uint32_t nenv = 0;
  size_t total = 4 + 4 + 4 + n;
  for (char **e = environ; *e; e++) {
    if (strncmp(*e, "CNI_", 4) != 0) continue;
    nenv++;
    total += 4 + strlen(*e);
  }
  char *req = malloc(total), *w = req;
  if (!req) goto io_error;
  memcpy(w, "TCNI", 4); w += 4;
  w = put_u32(w, nenv);
  for (char **e = environ; *e; e++) {
    if (strncmp(*e, "CNI_", 4) != 0) continue;
    uint32_t l = (uint32_t)strlen(*e);
    w = put_u32(w, l);
    memcpy(w, *e, l); w += l;
  }
  w = put_u32(w, (uint32_t)n);
  memcpy(w, in, n);
  if (write_all(s, req, total)) goto io_error;
  shutdown(s, SHUT_WR);

  phase = "waiting for the answer of";
  errno = 0;
  uint32_t code, len;
  if (get_u32(s, &code) || get_u32(s, &len)) goto io_error;
  if (len > (16u << 20)) { phase = "reading an oversized answer from"; errno = EMSGSIZE; goto io_error; }
  char *out = malloc(len + 1);
  if (!out || read_all(s, out, len)) goto io_error;
  if (len) {
    write_all(1, out, len);
    if (out[len - 1] != '\n') write_all(1, "\n", 1);
  }
  return (int)code;

io_error:
  /* The daemon took the request but failed mid-way: report, do not retry (ADD is not idempotent across a half-done attempt).
   * errno 0 means end of file: the daemon closed the connection, i.e. it stopped or crashed mid-request. */
  printf("{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"tern: lost the connection while %s the node daemon at %s: %s; try again (a DEL cleans up a half-done ADD)\"}\n",
         phase, sa.sun_path, errno ? strerror(errno) : "the daemon closed the connection without answering (it stopped or crashed mid-request)");
  return 1;
}
