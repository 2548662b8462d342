/* test_proxy.c: the PROXY protocol parser (v1 and v2, whole, split at every
 * byte, malformed) and CIDR lists. */
#include "core/proxy.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <string.h>

static int parse(const char *buf, size_t len, struct sl_proxy_result *r)
{
    memset(r, 0xAA, sizeof(*r));
    return sl_proxy_parse(buf, len, r);
}

static const char *addr_str(const struct sl_proxy_result *r, char *out, size_t n)
{
    if (r->src.sa.sa_family == AF_INET)
        inet_ntop(AF_INET, &r->src.in.sin_addr, out, (socklen_t)n);
    else
        inet_ntop(AF_INET6, &r->src.in6.sin6_addr, out, (socklen_t)n);
    return out;
}

/* Every proper prefix of a valid header asks for more; the whole gives LEN. */
static void check_prefixes(const char *h, size_t len)
{
    struct sl_proxy_result r;
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(parse(h, i, &r), SL_AGAIN, "prefix of %zu bytes", i);
    cr_assert_eq(parse(h, len, &r), (int)len);
}

Test(proxy_v1, tcp4)
{
    const char h[] = "PROXY TCP4 192.0.2.7 127.0.0.1 51000 8080\r\nGET / HTTP/1.1\r\n";
    struct sl_proxy_result r;
    int n = parse(h, sizeof(h) - 1, &r);
    cr_assert_eq(n, (int)strlen("PROXY TCP4 192.0.2.7 127.0.0.1 51000 8080\r\n"));
    cr_assert(r.has_addr);
    char s[64];
    cr_assert_str_eq(addr_str(&r, s, sizeof(s)), "192.0.2.7");
    cr_assert_eq(ntohs(r.src.in.sin_port), 51000);
    check_prefixes(h, (size_t)n);
}

Test(proxy_v1, tcp6_and_unknown)
{
    const char h[] = "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
    struct sl_proxy_result r;
    cr_assert_eq(parse(h, sizeof(h) - 1, &r), (int)sizeof(h) - 1);
    char s[64];
    cr_assert_eq(r.src.sa.sa_family, AF_INET6);
    cr_assert_str_eq(addr_str(&r, s, sizeof(s)), "2001:db8::1");
    const char u[] = "PROXY UNKNOWN ffff:f...f 1 2\r\n";
    cr_assert_eq(parse(u, sizeof(u) - 1, &r), (int)sizeof(u) - 1);
    cr_assert(!r.has_addr);
    cr_assert_eq(parse("PROXY UNKNOWN\r\n", 15, &r), 15);
    cr_assert(!r.has_addr);
}

Test(proxy_v1, malformed)
{
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "PROXY TCP4 192.0.2.7 127.0.0.1 51000\r\n",        /* a field short */
        "PROXY TCP4 192.0.2.7 127.0.0.1 51000 80 9\r\n",   /* a field more */
        "PROXY TCP4  192.0.2.7 127.0.0.1 51000 80\r\n",    /* two spaces */
        "PROXY TCP4 192.0.2.256 127.0.0.1 51000 80\r\n",   /* not an address */
        "PROXY TCP4 ::1 127.0.0.1 51000 80\r\n",           /* v6 in TCP4 */
        "PROXY TCP6 127.0.0.1 ::1 51000 80\r\n",           /* v4 in TCP6 */
        "PROXY TCP4 192.0.2.7 127.0.0.1 65536 80\r\n",     /* port too large */
        "PROXY TCP4 192.0.2.7 127.0.0.1 -1 80\r\n",
        "PROXY TCP4 192.0.2.7 127.0.0.1 051000 80\r\n",    /* leading zero */
        "PROXY UDP4 192.0.2.7 127.0.0.1 1 80\r\n",
        "PROXY TCP4 192.0.2.7 127.0.0.1 1 80\n",           /* LF alone */
        "PROXY TCP4 192.0.2.7 127.0.0.1 1 80\rX",          /* CR without LF */
        "proxy TCP4 192.0.2.7 127.0.0.1 1 80\r\n",
        "PROXY\r\n",
        "PROXY UNKNOWNX\r\n",
    };
    struct sl_proxy_result r;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(parse(bad[i], strlen(bad[i]), &r), SL_ERR, "%s", bad[i]);
    /* A line without CRLF is cut off at 107 bytes. */
    char longl[200];
    memset(longl, '1', sizeof(longl));
    memcpy(longl, "PROXY UNKNOWN ", 14);
    cr_assert_eq(parse(longl, 106, &r), SL_AGAIN);
    cr_assert_eq(parse(longl, 107, &r), SL_ERR);
    cr_assert_eq(parse(longl, sizeof(longl), &r), SL_ERR);
}

static size_t v2(char *out, unsigned char vc, unsigned char fam, const void *addr,
                 size_t alen, size_t tlv)
{
    memcpy(out, "\r\n\r\n\0\r\nQUIT\n", 12);
    out[12] = (char)vc;
    out[13] = (char)fam;
    out[14] = (char)((alen + tlv) >> 8);
    out[15] = (char)((alen + tlv) & 0xff);
    memcpy(out + 16, addr, alen);
    memset(out + 16 + alen, 0x04, tlv); /* TLVs are skipped, whatever they hold */
    return 16 + alen + tlv;
}

Test(proxy_v2, tcp4_tcp6_local)
{
    char h[512];
    unsigned char a4[12] = {198, 51, 100, 9, 127, 0, 0, 1, 0xC3, 0x50, 0x1F, 0x90};
    size_t n = v2(h, 0x21, 0x11, a4, sizeof(a4), 5);
    struct sl_proxy_result r;
    cr_assert_eq(parse(h, n, &r), (int)n);
    char s[64];
    cr_assert(r.has_addr);
    cr_assert_str_eq(addr_str(&r, s, sizeof(s)), "198.51.100.9");
    cr_assert_eq(ntohs(r.src.in.sin_port), 50000);
    check_prefixes(h, n);

    unsigned char a6[36] = {0x20, 0x01, 0x0d, 0xb8, [15] = 5, [31] = 1, [32] = 0, [33] = 80};
    n = v2(h, 0x21, 0x21, a6, sizeof(a6), 0);
    cr_assert_eq(parse(h, n, &r), (int)n);
    cr_assert_str_eq(addr_str(&r, s, sizeof(s)), "2001:db8::5");
    cr_assert_eq(ntohs(r.src.in6.sin6_port), 80);

    n = v2(h, 0x20, 0x00, "", 0, 0); /* LOCAL: haproxy's own health check */
    cr_assert_eq(parse(h, n, &r), 16);
    cr_assert(!r.has_addr);
    n = v2(h, 0x20, 0x11, a4, sizeof(a4), 0); /* LOCAL ignores addresses */
    cr_assert_eq(parse(h, n, &r), (int)n);
    cr_assert(!r.has_addr);
}

Test(proxy_v2, malformed)
{
    char h[512];
    unsigned char a4[12] = {198, 51, 100, 9};
    struct sl_proxy_result r;
    size_t n = v2(h, 0x11, 0x11, a4, sizeof(a4), 0); /* version 1 */
    cr_assert_eq(parse(h, n, &r), SL_ERR);
    n = v2(h, 0x22, 0x11, a4, sizeof(a4), 0); /* command 2 */
    cr_assert_eq(parse(h, n, &r), SL_ERR);
    n = v2(h, 0x21, 0x12, a4, sizeof(a4), 0); /* UDP */
    cr_assert_eq(parse(h, n, &r), SL_ERR);
    n = v2(h, 0x21, 0x11, a4, 8, 0); /* too short for TCP4 */
    cr_assert_eq(parse(h, n, &r), SL_ERR);
    n = v2(h, 0x21, 0x21, a4, 12, 0); /* too short for TCP6 */
    cr_assert_eq(parse(h, n, &r), SL_ERR);
    memcpy(h, "\r\n\r\n\0\r\nQUIX\n", 12); /* signature */
    cr_assert_eq(parse(h, 12, &r), SL_ERR);
    cr_assert_eq(parse("\r\n\r\n", 4, &r), SL_AGAIN);
    cr_assert_eq(parse("\r\nGET", 5, &r), SL_ERR);
    cr_assert_eq(parse("", 0, &r), SL_AGAIN);
}

Test(proxy_cidr, parse_and_match)
{
    struct sl_cidr l[SL_PROXY_CIDR_MAX];
    char err[128];
    int n = sl_cidr_parse_list("10.0.0.0/8, 127.0.0.1 192.168.1.0/23,,2001:db8::/32", l,
                               SL_PROXY_CIDR_MAX, err, sizeof(err));
    cr_assert_eq(n, 4, "%s", err);
    struct sockaddr_in a = {.sin_family = AF_INET};
    struct sockaddr_in6 b = {.sin6_family = AF_INET6};
    static const struct {
        const char *ip;
        bool in;
    } cases[] = {{"10.255.0.1", true},   {"11.0.0.1", false},     {"127.0.0.1", true},
                 {"127.0.0.2", false},   {"192.168.0.9", true},   {"192.168.1.9", true},
                 {"192.168.2.1", false}, {"2001:db8:1::1", true}, {"2001:db9::1", false},
                 {"::ffff:10.1.2.3", true}, {"::1", false}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct sockaddr *sa;
        if (inet_pton(AF_INET, cases[i].ip, &a.sin_addr) == 1) {
            sa = (const struct sockaddr *)&a;
        } else {
            cr_assert_eq(inet_pton(AF_INET6, cases[i].ip, &b.sin6_addr), 1);
            sa = (const struct sockaddr *)&b;
        }
        cr_assert_eq(sl_cidr_match(l, n, sa), cases[i].in, "%s", cases[i].ip);
    }
    cr_assert(!sl_cidr_match(l, 0, (const struct sockaddr *)&a), "empty list: no match");
    cr_assert_eq(sl_cidr_parse_list("", l, 4, err, sizeof(err)), 0);
    static const char *const bad[] = {"10.0.0.0/33", "10.0.0.0/", "::/129", "10.0.0",
                                      "example.com", "10.0.0.0/8/8", "1.2.3.4/-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(sl_cidr_parse_list(bad[i], l, 4, err, sizeof(err)), SL_ERR, "%s",
                     bad[i]);
        cr_assert(strstr(err, "not an address") != NULL, "%s", err);
    }
    cr_assert_eq(sl_cidr_parse_list("1.1.1.1 2.2.2.2 3.3.3.3", l, 2, err, sizeof(err)),
                 SL_ERR);
}
