/* test_mime.c: loading a mime.types file (comments, several extensions per
 * line, later definitions win, over-long lines, lines that are not types),
 * case-insensitive lookup of the last extension of the last path component,
 * the default type, and the built-in table, used only when there is no
 * readable file. */
#include "core/mime.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

/* Writes TEXT to a fresh temporary file named in PATH. */
static void write_types(const char *text)
{
    snprintf(path, sizeof(path), "/tmp/sluice-mime-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fputs(text, f) >= 0, true);
    cr_assert_eq(fclose(f), 0);
}

static void remove_types(void)
{
    if (path[0])
        unlink(path);
    path[0] = '\0';
}

static const char sample[] =
    "# mime.types for the tests\n"
    "\n"
    "text/x-foo\tfoo FOO2   bar # trailing comment names baz\n"
    "   # indented comment: text/x-evil evil\n"
    "application/x-one  dup\n"
    "application/x-two  dup\n"
    "image/x-html-override  html\r\n" /* CRLF file */
    "application/x-gz-custom gz\n"
    "notatype zzz\n"         /* no '/': not a type line */
    "application/x-lonely\n" /* a type without extensions */
    "text/x-upper  UPPER\n"
    "text/x-last-line-without-newline last";

Test(mime, file_lines_comments_and_overrides, .fini = remove_types)
{
    write_types(sample);
    bool warn = true;
    struct sl_mime *m = sl_mime_load(path, "application/octet-stream", &warn);
    cr_assert_not_null(m);
    cr_expect_not(warn);
    struct {
        const char *name, *type;
    } cases[] = {
        {"a.foo", "text/x-foo"},
        {"a.foo2", "text/x-foo"},
        {"a.bar", "text/x-foo"},
        {"a.baz", "application/octet-stream"}, /* only in a comment */
        {"a.evil", "application/octet-stream"},
        {"a.dup", "application/x-two"},        /* later definition wins */
        {"a.html", "image/x-html-override"},   /* the file overrides the built-in */
        {"a.gz", "application/x-gz-custom"},
        {"a.zzz", "application/octet-stream"},
        {"a.upper", "text/x-upper"},
        {"a.last", "text/x-last-line-without-newline"},
        {"a.css", "application/octet-stream"}, /* the file is the whole table */
        {"a.svg", "application/octet-stream"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++)
        cr_expect_str_eq(sl_mime_type(m, cases[i].name), cases[i].type, "%s", cases[i].name);
    sl_mime_free(m);
}

Test(mime, lookup_is_case_insensitive, .fini = remove_types)
{
    write_types(sample);
    struct sl_mime *m = sl_mime_load(path, NULL, NULL);
    const char *names[] = {"x.foo", "X.FOO", "x.Foo", "x.fOO2", "x.Bar"};
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++)
        cr_expect_str_eq(sl_mime_type(m, names[i]), "text/x-foo", "%s", names[i]);
    cr_expect_str_eq(sl_mime_type(m, "INDEX.HTML"), "image/x-html-override");
    cr_expect_str_eq(sl_mime_type(m, "logo.FoO"), "text/x-foo");
    sl_mime_free(m);
}

Test(mime, last_extension_of_last_component)
{
    struct sl_mime *m = sl_mime_load(NULL, "application/x-default", NULL);
    struct {
        const char *name, *type;
    } cases[] = {
        {"a.tar.gz", "application/gzip"},
        {"dir/a.tar.gz", "application/gzip"},
        {"a.tar", "application/x-tar"},
        {"docs/index.html", "text/html"},
        {"/abs/style.css", "text/css"},
        {"dir.css/file", "application/x-default"},  /* the dot is in a directory */
        {"dir.css/", "application/x-default"},
        {"noext", "application/x-default"},
        {"", "application/x-default"},
        {"/.bashrc", "application/x-default"},      /* a dot file has no extension */
        {".bashrc", "application/x-default"},
        {"dir/.css", "application/x-default"},
        {"/.config.json", "application/json"},      /* ...unless it has another dot */
        {"file.", "application/x-default"},         /* trailing dot */
        {"a.html.", "application/x-default"},
        {"a.unknownext", "application/x-default"},
        {"a.htm", "text/html"},
        {"a.HTMLX", "application/x-default"},       /* no prefix matches */
        {"a.ht", "application/x-default"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++)
        cr_expect_str_eq(sl_mime_type(m, cases[i].name), cases[i].type, "\"%s\"",
                         cases[i].name);
    sl_mime_free(m);
}

Test(mime, missing_file_warns_and_uses_builtin)
{
    bool warn = false;
    struct sl_mime *m = sl_mime_load("/nonexistent/sluice/mime.types", NULL, &warn);
    cr_assert_not_null(m);
    cr_expect(warn);
    cr_expect_str_eq(sl_mime_type(m, "index.html"), "text/html");
    cr_expect_str_eq(sl_mime_type(m, "style.css"), "text/css");
    cr_expect_str_eq(sl_mime_type(m, "logo.svg"), "image/svg+xml");
    cr_expect_str_eq(sl_mime_type(m, "blob.bin"), "application/octet-stream",
                     "NULL default type is application/octet-stream");
    sl_mime_free(m);
    /* a directory cannot be read as a file either */
    warn = false;
    m = sl_mime_load("/", "text/plain", &warn);
    cr_expect(warn);
    cr_expect_str_eq(sl_mime_type(m, "x.css"), "text/css");
    cr_expect_str_eq(sl_mime_type(m, "x.bin"), "text/plain");
    sl_mime_free(m);
}

Test(mime, no_path_is_builtin_without_warning)
{
    bool warn = true;
    struct sl_mime *m = sl_mime_load(NULL, "text/plain", &warn);
    cr_expect_not(warn);
    cr_expect_str_eq(sl_mime_type(m, "a.js"), "text/javascript");
    cr_expect_str_eq(sl_mime_type(m, "a.woff2"), "font/woff2");
    cr_expect_str_eq(sl_mime_type(m, "a"), "text/plain", "custom default type");
    sl_mime_free(m);
    warn = true;
    m = sl_mime_load("", NULL, &warn);
    cr_expect_not(warn, "an empty path means no file");
    cr_expect_str_eq(sl_mime_type(m, "a.png"), "image/png");
    sl_mime_free(m);
}

Test(mime, many_extensions_grow_the_table, .fini = remove_types)
{
    /* enough entries to force several rehashes of the open-addressing table */
    size_t cap = 64 * 1024;
    char *text = malloc(cap);
    size_t n = 0;
    for (int i = 0; i < 2000; i++)
        n += (size_t)snprintf(text + n, cap - n, "type/t%d e%d x%d\n", i % 7, i, i);
    write_types(text);
    free(text);
    struct sl_mime *m = sl_mime_load(path, NULL, NULL);
    for (int i = 0; i < 2000; i++) {
        char name[32], want[32];
        snprintf(name, sizeof(name), "f.E%d", i);
        snprintf(want, sizeof(want), "type/t%d", i % 7);
        cr_expect_str_eq(sl_mime_type(m, name), want, "%s", name);
        snprintf(name, sizeof(name), "f.x%d", i);
        cr_expect_str_eq(sl_mime_type(m, name), want, "%s", name);
    }
    cr_expect_str_eq(sl_mime_type(m, "f.e2000"), "application/octet-stream");
    cr_expect_str_eq(sl_mime_type(m, "f.html"), "application/octet-stream");
    sl_mime_free(m);
}

Test(mime, over_long_line_is_not_split_into_two, .fini = remove_types)
{
    /* A comment longer than any fixed line buffer must stay one comment: its
       tail must not be read as a "type ext..." line of its own. Likewise a long
       type line keeps all its extensions. */
    size_t pad = 10000;
    char *text = malloc(2 * pad + 256);
    size_t n = 0;
    text[n++] = '#';
    for (size_t i = 0; i < pad; i++)
        text[n++] = ' ';
    n += (size_t)sprintf(text + n, "text/x-evil html css\n");
    n += (size_t)sprintf(text + n, "text/x-long");
    for (size_t i = 0; i < pad; i++)
        text[n++] = ' ';
    n += (size_t)sprintf(text + n, "image/x-bad tail\n");
    text[n] = '\0';
    write_types(text);
    free(text);
    struct sl_mime *m = sl_mime_load(path, NULL, NULL);
    cr_expect_str_eq(sl_mime_type(m, "a.html"), "application/octet-stream");
    cr_expect_str_eq(sl_mime_type(m, "a.css"), "application/octet-stream");
    cr_expect_str_eq(sl_mime_type(m, "a.tail"), "text/x-long");
    sl_mime_free(m);
}

Test(mime, lines_that_are_not_types_are_skipped, .fini = remove_types)
{
    write_types("text/ht\"ml quote\n"   /* '"' is not a token character */
                "/x slashfirst\n"
                "text/ trailing\n"
                "text/a/b twoslashes\n"
                "text/\x01ctl ctl\n"
                "text/caf\xc3\xa9 utf\n"
                "text/ok good bad/ext ba\x01d \xc3\xa9t\xc3\xa9\n"
                "text/x-sp\x0b\x0cvt\n"); /* VT and FF separate tokens */
    struct sl_mime *m = sl_mime_load(path, "x/default", NULL);
    const char *none[] = {"a.quote", "a.slashfirst", "a.trailing", "a.twoslashes", "a.ctl",
                          "a.utf", "a.ext", "a.ba\x01d", "a.\xc3\xa9t\xc3\xa9"};
    for (size_t i = 0; i < SL_ARRAY_LEN(none); i++)
        cr_expect_str_eq(sl_mime_type(m, none[i]), "x/default", "%s", none[i]);
    cr_expect_str_eq(sl_mime_type(m, "a.good"), "text/ok");
    cr_expect_str_eq(sl_mime_type(m, "a.vt"), "text/x-sp");
    sl_mime_free(m);
}

Test(mime, empty_file_knows_nothing, .fini = remove_types)
{
    write_types("# nothing but a comment\n\n");
    bool warn = true;
    struct sl_mime *m = sl_mime_load(path, NULL, &warn);
    cr_expect_not(warn, "readable: no warning");
    cr_expect_str_eq(sl_mime_type(m, "index.html"), "application/octet-stream");
    cr_expect_str_eq(sl_mime_type(m, "x"), "application/octet-stream");
    sl_mime_free(m);
}

Test(mime, builtin_table_covers_the_common_web_types)
{
    struct sl_mime *m = sl_mime_load(NULL, NULL, NULL);
    struct {
        const char *name, *type;
    } cases[] = {
        {"a.html", "text/html"},      {"a.htm", "text/html"},
        {"a.css", "text/css"},        {"a.js", "text/javascript"},
        {"a.mjs", "text/javascript"}, {"a.json", "application/json"},
        {"a.txt", "text/plain"},      {"a.xml", "application/xml"},
        {"a.svg", "image/svg+xml"},   {"a.png", "image/png"},
        {"a.jpg", "image/jpeg"},      {"a.jpeg", "image/jpeg"},
        {"a.gif", "image/gif"},       {"a.webp", "image/webp"},
        {"a.ico", "image/vnd.microsoft.icon"},
        {"a.pdf", "application/pdf"}, {"a.wasm", "application/wasm"},
        {"a.woff", "font/woff"},      {"a.woff2", "font/woff2"},
        {"a.mp4", "video/mp4"},       {"a.webm", "video/webm"},
        {"a.zip", "application/zip"}, {"a.gz", "application/gzip"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++)
        cr_expect_str_eq(sl_mime_type(m, cases[i].name), cases[i].type, "%s", cases[i].name);
    /* no charset is ever added */
    cr_expect_null(strchr(sl_mime_type(m, "a.html"), ';'));
    sl_mime_free(m);
}

Test(mime, system_mime_types_agrees_with_the_builtin_table)
{
    /* /etc/mime.types comes from Debian's media-types and may be absent. */
    if (access("/etc/mime.types", R_OK) != 0) {
        cr_log_info("no /etc/mime.types here; nothing to compare");
        return;
    }
    bool warn = true;
    struct sl_mime *sys = sl_mime_load("/etc/mime.types", NULL, &warn);
    struct sl_mime *bi = sl_mime_load(NULL, NULL, NULL);
    cr_expect_not(warn);
    const char *exts[] = {"html", "css", "js", "json", "png", "jpg", "svg", "wasm", "woff2",
                          "pdf", "gz", "mp4"};
    for (size_t i = 0; i < SL_ARRAY_LEN(exts); i++) {
        char name[16];
        snprintf(name, sizeof(name), "f.%s", exts[i]);
        cr_expect_str_eq(sl_mime_type(sys, name), sl_mime_type(bi, name), "%s", name);
    }
    sl_mime_free(sys);
    sl_mime_free(bi);
}
