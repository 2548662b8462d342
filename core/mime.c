/* mime.c: extension -> Content-Type from a mime.types file, with a built-in
 * table underneath; see mime.h. The table is an immutable open-addressing
 * hash built at load time, so lookups from any thread need no lock. */
#include "core/mime.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct mime_slot {
    char *ext; /* lowercase; NULL = empty slot */
    char *type;
};

struct sl_mime {
    struct mime_slot *slots;
    size_t cap; /* power of two */
    size_t used;
    char *default_type;
};

static const char *const builtin[][2] = {
    {"html", "text/html"},           {"htm", "text/html"},
    {"css", "text/css"},             {"js", "text/javascript"},
    {"mjs", "text/javascript"},      {"json", "application/json"},
    {"txt", "text/plain"},           {"xml", "application/xml"},
    {"svg", "image/svg+xml"},        {"png", "image/png"},
    {"jpg", "image/jpeg"},           {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},            {"webp", "image/webp"},
    {"ico", "image/vnd.microsoft.icon"}, {"avif", "image/avif"},
    {"pdf", "application/pdf"},      {"wasm", "application/wasm"},
    {"woff", "font/woff"},           {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},             {"otf", "font/otf"},
    {"mp4", "video/mp4"},            {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},           {"ogg", "audio/ogg"},
    {"zip", "application/zip"},      {"gz", "application/gzip"},
    {"tar", "application/x-tar"},    {"csv", "text/csv"},
    {"md", "text/markdown"},
};

static uint64_t hash_ext(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)tolower((unsigned char)s[i]);
        h *= 1099511628211ull;
    }
    return h;
}

static void grow(struct sl_mime *m);

/* Sets EXT -> TYPE; a later definition replaces an earlier one. */
static void put(struct sl_mime *m, const char *ext, size_t n, const char *type)
{
    if ((m->used + 1) * 2 > m->cap)
        grow(m);
    size_t i = hash_ext(ext, n) & (m->cap - 1);
    while (m->slots[i].ext) {
        if (strlen(m->slots[i].ext) == n && strncasecmp(m->slots[i].ext, ext, n) == 0) {
            free(m->slots[i].type);
            m->slots[i].type = sl_strdup(type);
            return;
        }
        i = (i + 1) & (m->cap - 1);
    }
    char *e = sl_malloc(n + 1);
    for (size_t k = 0; k < n; k++)
        e[k] = (char)tolower((unsigned char)ext[k]);
    e[n] = '\0';
    m->slots[i].ext = e;
    m->slots[i].type = sl_strdup(type);
    m->used++;
}

static void grow(struct sl_mime *m)
{
    struct mime_slot *old = m->slots;
    size_t oldcap = m->cap;
    m->cap = oldcap ? oldcap * 2 : 64;
    m->slots = sl_calloc(m->cap, sizeof(*m->slots));
    m->used = 0;
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].ext) {
            size_t j = hash_ext(old[i].ext, strlen(old[i].ext)) & (m->cap - 1);
            while (m->slots[j].ext)
                j = (j + 1) & (m->cap - 1);
            m->slots[j] = old[i];
            m->used++;
        }
    }
    free(old);
}

struct sl_mime *sl_mime_load(const char *path, const char *default_type, bool *warn)
{
    struct sl_mime *m = sl_calloc(1, sizeof(*m));
    m->default_type = sl_strdup(default_type ? default_type : "application/octet-stream");
    for (size_t i = 0; i < SL_ARRAY_LEN(builtin); i++)
        put(m, builtin[i][0], strlen(builtin[i][0]), builtin[i][1]);
    if (warn)
        *warn = false;
    if (path == NULL || path[0] == '\0')
        return m;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (warn)
            *warn = true;
        return m;
    }
    /* getline, not a fixed buffer: a long line split in two would have its
       tail read as a line of its own (a comment's tail as a type). */
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *save = NULL;
        char *type = strtok_r(line, " \t\r\n", &save);
        if (type == NULL || strchr(type, '/') == NULL)
            continue;
        for (char *ext; (ext = strtok_r(NULL, " \t\r\n", &save)) != NULL;)
            put(m, ext, strlen(ext), type);
    }
    if (ferror(f) && warn) /* e.g. EISDIR: PATH was opened but is not readable */
        *warn = true;
    free(line);
    fclose(f);
    return m;
}

const char *sl_mime_type(const struct sl_mime *m, const char *name)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strrchr(base, '.');
    if (dot == NULL || dot == base || dot[1] == '\0')
        return m->default_type;
    const char *ext = dot + 1;
    size_t n = strlen(ext);
    size_t i = hash_ext(ext, n) & (m->cap - 1);
    while (m->slots[i].ext) {
        if (strlen(m->slots[i].ext) == n && strncasecmp(m->slots[i].ext, ext, n) == 0)
            return m->slots[i].type;
        i = (i + 1) & (m->cap - 1);
    }
    return m->default_type;
}

void sl_mime_free(struct sl_mime *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slots[i].ext);
        free(m->slots[i].type);
    }
    free(m->slots);
    free(m->default_type);
    free(m);
}
