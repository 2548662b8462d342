/* floor.c: the lower bound of tools/sluice-bench. One thread, nonblocking
 * sockets, level-triggered epoll; reads until "\r\n\r\n", looks the path up
 * among responses built in memory at start (head and body in one buffer,
 * one send per response) and answers keep-alive or Connection: close. No
 * files, no cache checks, no logging: what is left is the kernel's cost of
 * a request. Not part of the build; the bench compiles it with cc -O2.
 *
 *   floor HOST PORT DOCROOT PATH...   (each PATH, e.g. /bench/1k.html, is
 *                                      read once from DOCROOT at start)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define SLOTS 1024 /* hash slots for the paths (a power of two) */
#define MAXFD 65536
#define INBUF 8192

struct resp { char *path; char *msg[2]; size_t len[2]; }; /* [1]: Connection: close */
struct conn { size_t inlen, off; const char *out; size_t outlen; int close_after; char in[INBUF]; };

static struct resp table[SLOTS];
static struct resp notfound;
static struct conn *conns[MAXFD];
static int ep;

static unsigned hash(const char *s, size_t n) {
    unsigned h = 2166136261u;
    while (n--) h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

static void build(struct resp *r, const char *status, const char *body, size_t blen) {
    for (int c = 0; c < 2; c++) {
        char head[256];
        int h = snprintf(head, sizeof head, "HTTP/1.1 %s\r\nServer: floor\r\nContent-Length: %zu\r\n"
                         "Content-Type: application/octet-stream\r\n%s\r\n", status, blen,
                         c ? "Connection: close\r\n" : "");
        r->msg[c] = malloc(h + blen);
        memcpy(r->msg[c], head, h);
        memcpy(r->msg[c] + h, body, blen);
        r->len[c] = h + blen;
    }
}

static void load(const char *docroot, const char *path) {
    char full[4096];
    snprintf(full, sizeof full, "%s%s", docroot, path);
    int fd = open(full, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) { perror(full); exit(1); }
    char *body = malloc(st.st_size + 1);
    if (read(fd, body, st.st_size) != st.st_size) { perror(full); exit(1); }
    close(fd);
    unsigned i = hash(path, strlen(path)) & (SLOTS - 1);
    while (table[i].path) i = (i + 1) & (SLOTS - 1);
    table[i].path = strdup(path);
    build(&table[i], "200 OK", body, st.st_size);
    free(body);
}

static const struct resp *lookup(const char *p, size_t n) {
    for (unsigned i = hash(p, n) & (SLOTS - 1); table[i].path; i = (i + 1) & (SLOTS - 1))
        if (strlen(table[i].path) == n && memcmp(table[i].path, p, n) == 0) return &table[i];
    return &notfound;
}

static int errno_again(void) { return errno == EAGAIN || errno == EWOULDBLOCK; }

static void drop(int fd) {
    close(fd); /* closing removes it from the epoll set */
    free(conns[fd]);
    conns[fd] = NULL;
}

/* Sends what is pending; 1: all sent, 0: the socket is full, -1: error. */
static int flush(int fd, struct conn *c) {
    while (c->off < c->outlen) {
        ssize_t n = send(fd, c->out + c->off, c->outlen - c->off, MSG_NOSIGNAL);
        if (n < 0) return errno_again() ? 0 : -1;
        c->off += n;
    }
    c->out = NULL;
    return 1;
}

/* Answers every complete request in the buffer, in order. */
static void serve(int fd, struct conn *c) {
    char *end;
    while (!c->out && (end = memmem(c->in, c->inlen, "\r\n\r\n", 4))) {
        size_t hl = end + 4 - c->in;
        char *sp1 = memchr(c->in, ' ', hl), *sp2 = sp1 ? memchr(sp1 + 1, ' ', end - sp1) : NULL;
        const struct resp *r = sp1 && sp2 ? lookup(sp1 + 1, sp2 - sp1 - 1) : &notfound;
        c->in[hl - 1] = 0; /* the header block as a string; its last "\n" is not needed */
        int http10 = sp2 && strncmp(sp2 + 1, "HTTP/1.0", 8) == 0;
        c->close_after = strcasestr(c->in, "\nconnection: close") != NULL ||
                         (http10 && !strcasestr(c->in, "\nconnection: keep-alive"));
        c->out = r->msg[c->close_after];
        c->outlen = r->len[c->close_after];
        c->off = 0;
        memmove(c->in, c->in + hl, c->inlen - hl);
        c->inlen -= hl;
        int done = flush(fd, c);
        if (done < 0 || (done == 1 && c->close_after)) { drop(fd); return; }
        if (done == 0) { /* wait until writable; reading resumes after */
            struct epoll_event ev = { .events = EPOLLOUT, .data.fd = fd };
            epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        }
    }
    if (c->inlen == INBUF) drop(fd); /* a header block larger than the buffer */
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: floor HOST PORT DOCROOT PATH...\n"); return 2; }
    for (int i = 4; i < argc; i++) load(argv[3], argv[i]);
    build(&notfound, "404 Not Found", "not found\n", 10);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1 || bind(ls, (void *)&a, sizeof a) < 0 ||
        listen(ls, 4096) < 0) { perror("floor: listen"); return 1; }
    ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = ls }, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int cfd;
                while ((cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (cfd >= MAXFD) { close(cfd); continue; }
                    conns[cfd] = calloc(1, sizeof(struct conn));
                    ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = cfd };
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
                }
                continue;
            }
            struct conn *c = conns[fd];
            if (!c) continue;
            if (c->out) { /* writable again */
                int done = flush(fd, c);
                if (done < 0 || (done == 1 && c->close_after)) { drop(fd); continue; }
                if (done == 0) continue;
                ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = fd };
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                serve(fd, c);
                continue;
            }
            ssize_t r = recv(fd, c->in + c->inlen, INBUF - c->inlen, 0);
            if (r <= 0) { if (r == 0 || !errno_again()) drop(fd); continue; }
            c->inlen += r;
            serve(fd, c);
        }
    }
}
