/* mime.h: file extension to Content-Type, from a mime.types file (format of
 * /etc/mime.types) with a built-in table as fallback. Loaded once at start
 * (and on reload); lookups are lock-free reads of an immutable table. */
#ifndef SLUICE_MIME_H
#define SLUICE_MIME_H

#include "core/common.h"

struct sl_mime;

/* Loads PATH (NULL or unreadable: only the built-in table, and *WARN is set
 * to true if PATH was given but could not be read). DEFAULT_TYPE is returned
 * for unknown extensions. Never returns NULL. */
struct sl_mime *sl_mime_load(const char *path, const char *default_type, bool *warn);

/* Content-Type for the file name NAME (the part after the last '.' of the last
 * path component, case-insensitive), exactly as the table gives it (no
 * charset is added, as nginx does); a dot file without another dot ("/.x")
 * has no extension. The result lives as long as M. */
const char *sl_mime_type(const struct sl_mime *m, const char *name);

void sl_mime_free(struct sl_mime *m);

#endif
