/* test_sbuf.c: the growing text buffer (lib/sbuf.c). */
#include "lib/sbuf.h"

#include <criterion/criterion.h>
#include <string.h>

Test(sbuf, empty_until_appended)
{
    struct sl_sbuf b = {0};
    cr_assert_null(b.p);
    sl_sbuf_put(&b, "", 0);
    cr_assert_not_null(b.p);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(b.p, "");
    sl_sbuf_free(&b);
    cr_assert_null(b.p);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
}

Test(sbuf, appends_stay_nul_terminated)
{
    struct sl_sbuf b = {0};
    sl_sbuf_puts(&b, "ab");
    sl_sbuf_put(&b, "cdef", 2);
    sl_sbuf_printf(&b, "-%d-%s", 42, "x");
    cr_assert_str_eq(b.p, "abcd-42-x");
    cr_assert_eq(b.len, strlen("abcd-42-x"));
    sl_sbuf_free(&b);
}

Test(sbuf, grows_past_the_printf_scratch_and_the_first_block)
{
    struct sl_sbuf b = {0};
    char big[3000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    sl_sbuf_printf(&b, "<%s>", big); /* longer than the 256-byte scratch */
    cr_assert_eq(b.len, sizeof(big) + 1);
    cr_assert_eq(b.p[0], '<');
    cr_assert_eq(b.p[b.len - 1], '>');
    cr_assert_eq(b.p[b.len], '\0');
    cr_assert_geq(b.cap, b.len + 1);
    for (int i = 0; i < 1000; i++)
        sl_sbuf_puts(&b, "0123456789");
    cr_assert_eq(b.len, sizeof(big) + 1 + 10000);
    cr_assert_eq(b.p[b.len], '\0');
    sl_sbuf_free(&b);
}

Test(sbuf, json_strings_are_escaped)
{
    struct sl_sbuf b = {0};
    sl_sbuf_json_str(&b, "a\"b\\c\n\x01\x7f" "é");
    cr_assert_str_eq(b.p, "\"a\\\"b\\\\c\\u000a\\u0001\\u007f" "é\"");
    sl_sbuf_free(&b);
}
