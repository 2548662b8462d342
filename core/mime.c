/* mime.c: extension -> Content-Type from a mime.types file, or a built-in
 * table when there is no file; see mime.h. The file is read whole into one
 * buffer and tokenized in place; the table is an open-addressing hash of
 * pointers into it, built once and never changed, so lookups from any thread
 * need no lock. */
#include "core/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_TYPE "application/octet-stream"

struct mime_slot {
    const char *ext; /* lowercase; NULL = empty slot */
    size_t len;
    const char *type;
};

struct sl_mime {
    struct mime_slot *slots;
    size_t mask; /* capacity - 1, capacity a power of two */
    char *text;  /* the file's bytes, tokens NUL-terminated in place */
    char *default_type;
};

/* The common web types, as /etc/mime.types (Debian media-types) has them. */
static const char *const builtin[][2] = {
    {"html", "text/html"},
    {"htm", "text/html"},
    {"css", "text/css"},
    {"js", "text/javascript"},
    {"mjs", "text/javascript"},
    {"json", "application/json"},
    {"txt", "text/plain"},
    {"csv", "text/csv"},
    {"md", "text/markdown"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/vnd.microsoft.icon"},
    {"pdf", "application/pdf"},
    {"wasm", "application/wasm"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
};

static inline unsigned char lower(unsigned char c)
{
    return (unsigned char)((unsigned)(c - 'A') < 26u ? c | 0x20 : c);
}

static size_t hash_ext(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a, on the lowercased bytes */
    for (size_t i = 0; i < n; i++) {
        h ^= lower((unsigned char)s[i]);
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

/* Is S[0..N) equal to the lowercase EXT[0..N), ignoring the case of S? */
static bool ext_eq(const char *s, const char *ext, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != (unsigned char)ext[i])
            return false;
    return true;
}

struct entry {
    const char *ext, *type;
    size_t len;
};

/* Builds the table from E[0..N); for an extension listed twice the later
 * entry wins (as nginx's types block does). */
static void build(struct sl_mime *m, const struct entry *e, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    m->slots = sl_calloc(cap, sizeof(*m->slots));
    m->mask = cap - 1;
    for (size_t k = 0; k < n; k++) {
        size_t i = hash_ext(e[k].ext, e[k].len) & m->mask;
        while (m->slots[i].ext &&
               !(m->slots[i].len == e[k].len && ext_eq(m->slots[i].ext, e[k].ext, e[k].len)))
            i = (i + 1) & m->mask;
        m->slots[i] = (struct mime_slot){e[k].ext, e[k].len, e[k].type};
    }
}

/* Reads all of PATH into a NUL-terminated sl_malloc'd buffer. Returns it, or
 * NULL with errno set. */
static char *read_all(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 64 * 1024, n = 0;
    char *buf = sl_malloc(cap);
    for (;;) {
        if (n + 1 >= cap)
            buf = sl_realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r == 0)
            break;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int err = errno; /* EISDIR for a directory */
            free(buf);
            close(fd);
            errno = err;
            return NULL;
        }
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    return buf;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* tchar (RFC 9110 5.6.2) */
static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* type "/" subtype, both tokens: what a Content-Type header may carry without
 * parameters. Anything else in the file is skipped, never sent. */
static bool valid_type(const char *t)
{
    const char *slash = strchr(t, '/');
    if (slash == NULL || slash == t || slash[1] == '\0')
        return false;
    for (const char *c = t; *c; c++)
        if (c != slash && !is_tchar(*c))
            return false;
    return true;
}

/* Tokenizes TEXT in place ("type ext1 ext2 ...", '#' to the end of a line is
 * a comment) into *OUT (sl_malloc'd). Returns the number of entries. */
static size_t parse_types(char *text, struct entry **out)
{
    size_t n = 0, cap = 256;
    struct entry *e = sl_malloc(cap * sizeof(*e));
    char *p = text;
    while (*p) {
        char *eol = strchr(p, '\n');
        char *next = eol ? eol + 1 : p + strlen(p);
        if (eol)
            *eol = '\0';
        char *hash = strchr(p, '#');
        if (hash)
            *hash = '\0';
        const char *type = NULL;
        for (;;) {
            while (is_space(*p))
                p++;
            if (*p == '\0')
                break;
            char *tok = p;
            while (*p && !is_space(*p))
                p++;
            if (*p)
                *p++ = '\0';
            if (type == NULL) {
                if (!valid_type(tok))
                    break; /* not a type line */
                type = tok;
                continue;
            }
            bool ok = true;
            for (char *c = tok; *c; c++) {
                if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == '/')
                    ok = false;
                *c = (char)lower((unsigned char)*c);
            }
            if (!ok)
                continue;
            if (n == cap)
                e = sl_realloc(e, (cap *= 2) * sizeof(*e));
            e[n++] = (struct entry){tok, type, strlen(tok)};
        }
        p = next;
    }
    *out = e;
    return n;
}

struct sl_mime *sl_mime_load(const char *path, const char *default_type, bool *warn)
{
    struct sl_mime *m = sl_calloc(1, sizeof(*m));
    m->default_type = sl_strdup(default_type ? default_type : DEFAULT_TYPE);
    if (warn)
        *warn = false;
    if (path != NULL && path[0] != '\0') {
        m->text = read_all(path);
        if (m->text == NULL && warn)
            *warn = true;
    }
    if (m->text != NULL) {
        struct entry *e;
        size_t n = parse_types(m->text, &e);
        build(m, e, n);
        free(e);
    } else {
        struct entry e[SL_ARRAY_LEN(builtin)];
        for (size_t i = 0; i < SL_ARRAY_LEN(builtin); i++)
            e[i] = (struct entry){builtin[i][0], builtin[i][1], strlen(builtin[i][0])};
        build(m, e, SL_ARRAY_LEN(builtin));
    }
    return m;
}

const char *sl_mime_type(const struct sl_mime *m, const char *name)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strrchr(base, '.');
    if (dot == NULL || dot == base || dot[1] == '\0')
        return m->default_type; /* no extension, a dot file, or "name." */
    const char *ext = dot + 1;
    size_t n = strlen(ext);
    for (size_t i = hash_ext(ext, n) & m->mask; m->slots[i].ext; i = (i + 1) & m->mask)
        if (m->slots[i].len == n && ext_eq(ext, m->slots[i].ext, n))
            return m->slots[i].type;
    return m->default_type;
}

void sl_mime_free(struct sl_mime *m)
{
    if (m == NULL)
        return;
    free(m->slots);
    free(m->text);
    free(m->default_type);
    free(m);
}
