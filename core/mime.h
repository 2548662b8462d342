/* mime.h: file extension to Content-Type, from a mime.types file (format of
 * /etc/mime.types), or a built-in table when there is no readable file. Loaded
 * once at start (and on reload); lookups are lock-free reads of an immutable
 * table. */
#ifndef SLUICE_MIME_H
#define SLUICE_MIME_H

#include "lib/common.h"

struct sl_mime;

/* Loads PATH, a file in the format of /etc/mime.types: lines "type ext1 ext2
 * ...", '#' to the end of a line a comment; a line whose type is not
 * "token/token" is skipped (it could not be sent as a header), and for an
 * extension listed twice the later line wins. A readable PATH is the whole
 * table, as nginx's types block is: the built-in table of common web types is
 * used only when PATH is NULL or "" or cannot be read. *WARN (if WARN is not
 * NULL) tells whether PATH was given but could not be read. DEFAULT_TYPE
 * (NULL: "application/octet-stream") is returned for unknown extensions.
 * Never returns NULL; on allocation failure the OOM policy of common.h
 * applies. */
struct sl_mime *sl_mime_load(const char *path, const char *default_type, bool *warn);

/* Content-Type for the file name NAME (the part after the last '.' of the last
 * path component, case-insensitive), exactly as the table gives it: no charset
 * parameter is added (as nginx, whose charset directive is off by default).
 * A dot file without another dot ("/.x"), a name ending in '.', or no '.' at
 * all means no extension: the default type. The result lives as long as M.
 * Any thread, concurrently; M is never modified after loading. */
const char *sl_mime_type(const struct sl_mime *m, const char *name);

/* Frees M (NULL is fine). No lookup may be running on it or follow. */
void sl_mime_free(struct sl_mime *m);

#endif
