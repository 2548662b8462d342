/* proxy.c: PROXY protocol v1/v2 parser and CIDR lists; see proxy.h. Follows
 * haproxy's doc/proxy-protocol.txt: v1 is one line "PROXY TCP4|TCP6|UNKNOWN
 * SRC DST SPORT DPORT\r\n" of at most 107 bytes; v2 is a 16-byte binary head
 * (12-byte signature, version/command, family, length) and LENGTH bytes of
 * addresses and TLVs, which are skipped. */
#include "core/proxy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static const char v2_sig[12] = {'\r', '\n', '\r', '\n', '\0', '\r',
                                '\n', 'Q',  'U',  'I',  'T',  '\n'};

/* Is the prefix BUF[0..LEN) consistent with WORD? */
static bool prefix_of(const char *buf, size_t len, const char *word, size_t wlen)
{
    return memcmp(buf, word, len < wlen ? len : wlen) == 0;
}

/* A decimal port: 1 to 5 digits, at most 65535, no sign. */
static bool parse_port(const char *s, size_t n, uint16_t *out)
{
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535 || (n > 1 && s[0] == '0'))
        return false;
    *out = (uint16_t)v;
    return true;
}

/* Splits the v1 line (without CRLF) at single spaces into at most 6 fields. */
static int split(const char *line, size_t n, const char *f[6], size_t fl[6])
{
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || line[i] == ' ') {
            if (k == 6 || i == start)
                return -1; /* too many fields, or an empty one (two spaces) */
            f[k] = line + start;
            fl[k] = i - start;
            k++;
            start = i + 1;
        }
    }
    return k;
}

static int parse_v1(const char *buf, size_t len, struct sl_proxy_result *out)
{
    size_t scan = len < SL_PROXY_V1_MAX ? len : SL_PROXY_V1_MAX;
    const char *cr = NULL;
    for (size_t i = 0; i + 1 < scan; i++) {
        if (buf[i] == '\r') {
            if (buf[i + 1] != '\n')
                return SL_ERR;
            cr = buf + i;
            break;
        }
        if (buf[i] == '\n' || buf[i] == '\0')
            return SL_ERR;
    }
    if (cr == NULL) {
        if (len >= SL_PROXY_V1_MAX)
            return SL_ERR;
        if (buf[len - 1] == '\n' || buf[len - 1] == '\0')
            return SL_ERR; /* the last byte, which the loop above did not see */
        return prefix_of(buf, len, "PROXY ", 6) ? SL_AGAIN : SL_ERR;
    }
    size_t n = (size_t)(cr - buf);
    int hlen = (int)n + 2;
    const char *f[6];
    size_t fl[6];
    if (n < 6 || memcmp(buf, "PROXY ", 6) != 0)
        return SL_ERR;
    if (n >= 13 && memcmp(buf + 6, "UNKNOWN", 7) == 0 && (n == 13 || buf[13] == ' ')) {
        out->has_addr = false; /* the rest of the line is ignored */
        return hlen;
    }
    if (split(buf, n, f, fl) != 6)
        return SL_ERR;
    int fam;
    if (fl[1] == 4 && memcmp(f[1], "TCP4", 4) == 0)
        fam = AF_INET;
    else if (fl[1] == 4 && memcmp(f[1], "TCP6", 4) == 0)
        fam = AF_INET6;
    else
        return SL_ERR;
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
    if (fl[2] >= sizeof(src) || fl[3] >= sizeof(dst))
        return SL_ERR;
    memcpy(src, f[2], fl[2]);
    src[fl[2]] = '\0';
    memcpy(dst, f[3], fl[3]);
    dst[fl[3]] = '\0';
    uint16_t sport, dport;
    if (!parse_port(f[4], fl[4], &sport) || !parse_port(f[5], fl[5], &dport))
        return SL_ERR;
    memset(&out->src, 0, sizeof(out->src));
    if (fam == AF_INET) {
        struct in_addr d;
        if (inet_pton(AF_INET, src, &out->src.in.sin_addr) != 1 ||
            inet_pton(AF_INET, dst, &d) != 1)
            return SL_ERR;
        out->src.in.sin_family = AF_INET;
        out->src.in.sin_port = htons(sport);
    } else {
        struct in6_addr d;
        if (inet_pton(AF_INET6, src, &out->src.in6.sin6_addr) != 1 ||
            inet_pton(AF_INET6, dst, &d) != 1)
            return SL_ERR;
        out->src.in6.sin6_family = AF_INET6;
        out->src.in6.sin6_port = htons(sport);
    }
    out->has_addr = true;
    return hlen;
}

static int parse_v2(const char *buf, size_t len, struct sl_proxy_result *out)
{
    if (!prefix_of(buf, len, v2_sig, sizeof(v2_sig)))
        return SL_ERR;
    if (len >= 13) {
        unsigned char vc = (unsigned char)buf[12];
        if ((vc >> 4) != 2 || (vc & 0xf) > 1)
            return SL_ERR; /* version 2; command LOCAL (0) or PROXY (1) */
    }
    if (len >= 14) {
        unsigned char fam = (unsigned char)buf[13];
        if (fam != 0x00 && fam != 0x11 && fam != 0x21 && fam != 0x31)
            return SL_ERR; /* unspec, TCP over IPv4, over IPv6, UNIX stream */
    }
    if (len < 16)
        return SL_AGAIN;
    size_t body = ((size_t)(unsigned char)buf[14] << 8) | (unsigned char)buf[15];
    unsigned char cmd = (unsigned char)buf[12] & 0xf;
    unsigned char fam = (unsigned char)buf[13];
    size_t need = fam == 0x11 ? 12 : fam == 0x21 ? 36 : fam == 0x31 ? 216 : 0;
    if (cmd == 1 && body < need)
        return SL_ERR; /* too short for its own addresses */
    if (len < 16 + body)
        return SL_AGAIN;
    const unsigned char *a = (const unsigned char *)buf + 16;
    memset(&out->src, 0, sizeof(out->src));
    out->has_addr = false;
    if (cmd == 1 && fam == 0x11) {
        out->src.in.sin_family = AF_INET;
        memcpy(&out->src.in.sin_addr, a, 4);
        memcpy(&out->src.in.sin_port, a + 8, 2);
        out->has_addr = true;
    } else if (cmd == 1 && fam == 0x21) {
        out->src.in6.sin6_family = AF_INET6;
        memcpy(&out->src.in6.sin6_addr, a, 16);
        memcpy(&out->src.in6.sin6_port, a + 32, 2);
        out->has_addr = true;
    }
    return (int)(16 + body);
}

int sl_proxy_parse(const char *buf, size_t len, struct sl_proxy_result *out)
{
    if (len == 0)
        return SL_AGAIN;
    if (buf[0] == 'P')
        return parse_v1(buf, len, out);
    if (buf[0] == '\r')
        return parse_v2(buf, len, out);
    return SL_ERR;
}

/* ---- CIDR lists ---- */

static int parse_cidr(const char *item, struct sl_cidr *c)
{
    char addr[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(item, '/');
    size_t al = slash ? (size_t)(slash - item) : strlen(item);
    if (al == 0 || al >= sizeof(addr))
        return SL_ERR;
    memcpy(addr, item, al);
    addr[al] = '\0';
    memset(c, 0, sizeof(*c));
    unsigned max;
    if (inet_pton(AF_INET, addr, c->addr) == 1) {
        c->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, addr, c->addr) == 1) {
        c->family = AF_INET6;
        max = 128;
    } else {
        return SL_ERR;
    }
    c->prefix = max;
    if (slash) {
        uint16_t p;
        if (!parse_port(slash + 1, strlen(slash + 1), &p) || p > max)
            return SL_ERR;
        c->prefix = p;
    }
    return SL_OK;
}

int sl_cidr_parse_list(const char *s, struct sl_cidr *out, int max, char *err, size_t errsz)
{
    int n = 0;
    const char *p = s;
    for (;;) {
        p += strspn(p, " \t,");
        if (*p == '\0')
            return n;
        size_t l = strcspn(p, " \t,");
        char item[128];
        if (l >= sizeof(item)) {
            snprintf(err, errsz, "'%.40s...' is not an address or network", p);
            return SL_ERR;
        }
        memcpy(item, p, l);
        item[l] = '\0';
        if (n == max) {
            snprintf(err, errsz, "more than %d networks", max);
            return SL_ERR;
        }
        if (parse_cidr(item, &out[n]) != SL_OK) {
            snprintf(err, errsz, "'%s' is not an address or network (like 10.0.0.0/8)",
                     item);
            return SL_ERR;
        }
        n++;
        p += l;
    }
}

static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

bool sl_cidr_match(const struct sl_cidr *list, int n, const struct sockaddr *sa)
{
    uint8_t a4[4], a6[16];
    bool v4 = false, v6 = false;
    if (sa->sa_family == AF_INET) {
        memcpy(a4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        v4 = true;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *x = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        memcpy(a6, x, 16);
        v6 = true;
        if (IN6_IS_ADDR_V4MAPPED(x)) {
            memcpy(a4, a6 + 12, 4);
            v4 = true;
        }
    }
    for (int i = 0; i < n; i++) {
        if (list[i].family == AF_INET && v4 && prefix_match(a4, list[i].addr, list[i].prefix))
            return true;
        if (list[i].family == AF_INET6 && v6 &&
            prefix_match(a6, list[i].addr, list[i].prefix))
            return true;
    }
    return false;
}
