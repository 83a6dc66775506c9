/* Tiny N-API addon: setns(2) for network namespaces, so one process can open
 * netlink sockets on both the host and the container side. A netlink socket
 * stays bound to the netns it was created in. Also exposes TCP MD5 (RFC 2385)
 * on a socket fd, which Node's net module cannot set. */
#define _GNU_SOURCE
#include <node_api.h>
#include <sched.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>
#include <stdio.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  char code[32];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  snprintf(code, sizeof code, "E%d", err);
  napi_value e, m, c, n;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &c);
  napi_create_error(env, c, m, &e);
  napi_create_int32(env, err, &n);
  napi_set_named_property(env, e, "errno", n);
  napi_throw(env, e);
  return NULL;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t len) {
  size_t out;
  return napi_get_value_string_utf8(env, v, buf, len, &out) == napi_ok ? 0 : -1;
}

/* openNetns(path) -> fd */
static napi_value open_netns(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[4096];
  if (argc < 1 || get_string(env, argv[0], path, sizeof path)) {
    napi_throw_type_error(env, NULL, "openNetns(path: string)");
    return NULL;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, path, errno);
  napi_value r; napi_create_int32(env, fd, &r);
  return r;
}

/* setns(fd): switch the calling thread's network namespace. */
static napi_value do_setns(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "setns(fd: number)");
    return NULL;
  }
  if (setns(fd, CLONE_NEWNET) != 0) return throw_errno(env, "setns", errno);
  return NULL;
}

static napi_value do_close(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "close(fd: number)");
    return NULL;
  }
  if (close(fd) != 0) return throw_errno(env, "close", errno);
  return NULL;
}

/* setTcpMd5(fd, peerAddress, key): RFC 2385 signature for one peer; an empty key removes it. */
static napi_value set_tcp_md5(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd; char addr[64]; char key[TCP_MD5SIG_MAXKEYLEN + 1];
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      get_string(env, argv[1], addr, sizeof addr) || get_string(env, argv[2], key, sizeof key)) {
    napi_throw_type_error(env, NULL, "setTcpMd5(fd: number, address: string, key: string)");
    return NULL;
  }
  struct tcp_md5sig sig; memset(&sig, 0, sizeof sig);
  struct sockaddr_in *s4 = (struct sockaddr_in *)&sig.tcpm_addr;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sig.tcpm_addr;
  if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) s4->sin_family = AF_INET;
  else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) s6->sin6_family = AF_INET6;
  else { napi_throw_type_error(env, NULL, "setTcpMd5: bad address"); return NULL; }
  sig.tcpm_keylen = (uint16_t)strlen(key);
  memcpy(sig.tcpm_key, key, sig.tcpm_keylen);
  if (setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, &sig, sizeof sig) != 0)
    return throw_errno(env, "setsockopt(TCP_MD5SIG)", errno);
  return NULL;
}

#ifndef IPV6_MINHOPCOUNT
#define IPV6_MINHOPCOUNT 73
#endif

/* setTtl(fd, ttl, minTtl): the TTL (hop limit) we send with, and the lowest we accept (0: any; RFC 5082).
   Set at both IP levels, since an IPv6 socket may carry IPv4 (v4-mapped); it fails only if neither applies. */
static napi_value set_ttl(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd, ttl, min;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &ttl) != napi_ok ||
      napi_get_value_int32(env, argv[2], &min) != napi_ok || ttl < 1 || ttl > 255 || min < 0 || min > 255) {
    napi_throw_type_error(env, NULL, "setTtl(fd: number, ttl: 1..255, minTtl: 0..255)");
    return NULL;
  }
  int ok4 = setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) == 0 && (min == 0 || setsockopt(fd, IPPROTO_IP, IP_MINTTL, &min, sizeof min) == 0);
  int err4 = errno;
  int ok6 = setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof ttl) == 0 && (min == 0 || setsockopt(fd, IPPROTO_IPV6, IPV6_MINHOPCOUNT, &min, sizeof min) == 0);
  if (!ok4 && !ok6) return throw_errno(env, "setsockopt(IP_TTL)", err4);
  return NULL;
}

/* tcpSocket(family): an unconnected non-blocking TCP socket, so a key can be set before the SYN. */
static napi_value tcp_socket(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fam;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fam) != napi_ok || (fam != 4 && fam != 6)) {
    napi_throw_type_error(env, NULL, "tcpSocket(family: 4 | 6)");
    return NULL;
  }
  int fd = socket(fam == 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  napi_value r; napi_create_int32(env, fd, &r);
  return r;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"openNetns", NULL, open_netns, NULL, NULL, NULL, napi_default, NULL},
    {"setns", NULL, do_setns, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, do_close, NULL, NULL, NULL, napi_default, NULL},
    {"setTcpMd5", NULL, set_tcp_md5, NULL, NULL, NULL, napi_default, NULL},
    {"tcpSocket", NULL, tcp_socket, NULL, NULL, NULL, napi_default, NULL},
    {"setTtl", NULL, set_ttl, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
