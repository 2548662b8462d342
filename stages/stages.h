/* stages.h: the entry points of the four pipeline stages, one file each.
 * Every entry point is a pthread start routine taking its struct sl_thread. */
#ifndef SLUICE_STAGES_H
#define SLUICE_STAGES_H

#include "core/server.h"

void *sl_acceptor_main(void *thread); /* stages/acceptor.c */
void *sl_reader_main(void *thread);   /* stages/reader.c */
void *sl_detector_main(void *thread); /* stages/detector.c */
void *sl_writer_main(void *thread);   /* stages/writer.c */

#endif
