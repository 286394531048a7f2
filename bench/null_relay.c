/* The cheapest possible Wayland proxy, for bench_wayland.py only: no parsing at all.
 *
 *     null_relay LISTEN_PATH UPSTREAM_PATH
 *
 * Every client accepted on LISTEN_PATH gets its own connection to
 * UPSTREAM_PATH; bytes and SCM_RIGHTS fds are passed on in order, both ways,
 * by one epoll loop (one recvmsg and one sendmsg per readable socket), as
 * hakurei's proxy does before it parses anything.  What a round trip costs
 * through this is what any proxy in its own process costs at the least: two
 * more wake-ups and four more socket calls.  Not part of hakurei (which is
 * pure Python); built by the benchmark with the system's cc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS 28
#define MAX_CONN 4096

static int peer[MAX_CONN];

static int unix_socket(const char *path, int listen_on)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || strlen(path) >= sizeof a.sun_path)
		return -1;
	strcpy(a.sun_path, path);
	if (listen_on) {
		unlink(path);
		if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 128))
			return -1;
	} else if (connect(s, (struct sockaddr *)&a, sizeof a)) {
		close(s);
		return -1;
	}
	return s;
}

static void hang_up(int ep, int fd)
{
	int other = peer[fd];
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	epoll_ctl(ep, EPOLL_CTL_DEL, other, NULL);
	close(fd);
	close(other);
}

/* One recvmsg from fd, then all of it (and its fds) sendmsg'd to its peer. */
static void forward(int ep, int fd)
{
	char buf[65536];
	char cbuf[CMSG_SPACE(MAX_FDS * sizeof(int))];
	struct iovec iov = {buf, sizeof buf};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			   .msg_controllen = sizeof cbuf};
	ssize_t n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
	if (n <= 0) {
		hang_up(ep, fd);
		return;
	}
	int fds[MAX_FDS], nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds + nfds, CMSG_DATA(c), k * sizeof(int));
			nfds += k;
		}
	size_t off = 0;
	while (off < (size_t)n) {
		char out[CMSG_SPACE(MAX_FDS * sizeof(int))];
		struct iovec o = {buf + off, n - off};
		struct msghdr s = {.msg_iov = &o, .msg_iovlen = 1};
		if (nfds && off == 0) {
			s.msg_control = out;
			s.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
			struct cmsghdr *c = CMSG_FIRSTHDR(&s);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
			memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
		}
		ssize_t w = sendmsg(peer[fd], &s, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		off += w;
	}
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (off < (size_t)n)
		hang_up(ep, fd);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: null_relay LISTEN_PATH UPSTREAM_PATH\n");
		return 2;
	}
	int lis = unix_socket(argv[1], 1), ep = epoll_create1(EPOLL_CLOEXEC);
	if (lis < 0 || ep < 0) {
		perror("null_relay");
		return 1;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lis};
	epoll_ctl(ep, EPOLL_CTL_ADD, lis, &ev);
	for (;;) {
		struct epoll_event got[64];
		int n = epoll_wait(ep, got, 64, -1);
		for (int i = 0; i < n; i++) {
			int fd = got[i].data.fd;
			if (fd != lis) {
				forward(ep, fd);
				continue;
			}
			int c = accept4(lis, NULL, NULL, SOCK_CLOEXEC);
			if (c < 0)
				continue;
			int u = unix_socket(argv[2], 0);
			if (u < 0 || c >= MAX_CONN || u >= MAX_CONN) {
				close(c);
				if (u >= 0)
					close(u);
				continue;
			}
			peer[c] = u;
			peer[u] = c;
			ev.data.fd = c;
			epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
			ev.data.fd = u;
			epoll_ctl(ep, EPOLL_CTL_ADD, u, &ev);
		}
	}
}
