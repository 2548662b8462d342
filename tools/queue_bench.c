/* queue_bench.c: throughput and queue wait of the stage-link queue, wfcq
 * against rculfq, for a few producer x consumer shapes. Consumers take
 * batches and sleep in sl_queue_wait() (futex wakeups), as the writer pool
 * does. Not a test; run by hand:
 *
 *   queue-bench [-n ITEMS] [-r ROUNDS] [-b BATCH] [-k wfcq|rculfq|both] [PxC ...]
 *
 * Defaults: 1000000 items per round, 5 rounds, batches of 64, both kinds,
 * shapes 1x1 and 2x2. Prints a line per round and a table of medians. */
#include "queue/queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <urcu.h>
#include <urcu/uatomic.h>

#define MAX_SHAPES 16
#define MAX_THREADS 256
#define MAX_ROUNDS 100
#define MAX_BATCH 1024

struct shape {
    int prod, cons;
};

struct opts {
    long items;
    int rounds;
    int batch;
    int kinds[2];
    int nkinds;
    struct shape shapes[MAX_SHAPES];
    int nshapes;
};

/* One round's shared state. */
struct round {
    struct sl_queue q;
    struct sl_qnode *nodes;
    long items;
    int prod;
    int batch;
    long consumed; /* atomic */
    int done;      /* atomic */
    uint64_t end_ns;
    pthread_barrier_t start;
};

struct targ {
    struct round *r;
    int id;
};

/* What one round measured. */
struct result {
    double mips; /* million items per second */
    double wait_mean_us;
    double wait_p99_us;
};

static void *producer(void *p)
{
    struct targ *a = p;
    struct round *r = a->r;
    long lo = r->items * a->id / r->prod;
    long hi = r->items * (a->id + 1) / r->prod;

    rcu_register_thread();
    pthread_barrier_wait(&r->start);
    for (long i = lo; i < hi; i++)
        sl_queue_push(&r->q, &r->nodes[i]);
    rcu_unregister_thread();
    return NULL;
}

static void *consumer(void *p)
{
    struct targ *a = p;
    struct round *r = a->r;
    struct sl_qnode *out[MAX_BATCH];

    rcu_register_thread();
    pthread_barrier_wait(&r->start);
    while (!uatomic_read(&r->done)) {
        size_t n = sl_queue_pop_batch(&r->q, out, (size_t)r->batch);
        if (n == 0) {
            (void)sl_queue_wait(&r->q, 100);
            continue;
        }
        if (uatomic_add_return(&r->consumed, (long)n) == r->items) {
            r->end_ns = sl_now_ns();
            uatomic_set(&r->done, 1);
            sl_queue_wake_all(&r->q);
        }
    }
    rcu_unregister_thread();
    return NULL;
}

/* DST = A - B for the counting fields; max is A's (an upper bound). */
static void hist_diff(struct sl_hist *dst, const struct sl_hist *a,
                      const struct sl_hist *b)
{
    dst->count = a->count - b->count;
    dst->sum = a->sum - b->sum;
    dst->max = a->max;
    for (int i = 0; i < SL_HIST_BUCKETS; i++)
        dst->b[i] = a->b[i] - b->b[i];
}

static int run_round(const struct opts *o, enum sl_queue_kind kind, struct shape sh,
                     struct sl_qnode *nodes, struct result *res)
{
    struct round *r = SL_NEW_ARRAY(struct round, 1); /* holds a cache-line aligned queue */
    pthread_t th[MAX_THREADS];
    struct targ args[MAX_THREADS];
    struct sl_stats_snapshot before, after;
    int n = sh.prod + sh.cons, started = 0;

    if (r == NULL)
        return SL_ERR;
    if (sl_queue_init(&r->q, kind, SL_WAKE_FUTEX, SL_STAGE_OTHER) != SL_OK) {
        free(r);
        return SL_ERR;
    }
    r->nodes = nodes;
    r->items = o->items;
    r->prod = sh.prod;
    r->batch = o->batch;
    pthread_barrier_init(&r->start, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        args[i].r = r;
        args[i].id = i < sh.prod ? i : i - sh.prod;
        void *(*fn)(void *) = i < sh.prod ? producer : consumer;
        if (pthread_create(&th[i], NULL, fn, &args[i]) != 0) {
            fprintf(stderr, "queue-bench: pthread_create: %s\n", strerror(errno));
            exit(1);
        }
        started++;
    }
    sl_stats_snapshot(&before);
    pthread_barrier_wait(&r->start);
    uint64_t t0 = sl_now_ns();
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    sl_stats_snapshot(&after);

    struct sl_hist w;
    hist_diff(&w, &after.stage[SL_STAGE_OTHER].q_wait,
              &before.stage[SL_STAGE_OTHER].q_wait);
    double secs = (double)(r->end_ns - t0) / 1e9;
    res->mips = (double)o->items / secs / 1e6;
    res->wait_mean_us = w.count ? (double)w.sum / (double)w.count / 1e3 : 0;
    res->wait_p99_us = (double)sl_hist_quantile(&w, 0.99) / 1e3;

    sl_queue_destroy(&r->q);
    pthread_barrier_destroy(&r->start);
    free(r);
    return SL_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void usage(void)
{
    fprintf(stderr, "usage: queue-bench [-n ITEMS] [-r ROUNDS] [-b BATCH] "
                    "[-k wfcq|rculfq|both] [PxC ...]\n");
    exit(2);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    int c;

    o->items = 1000000;
    o->rounds = 5;
    o->batch = 64;
    o->kinds[0] = SL_QUEUE_WFCQ;
    o->kinds[1] = SL_QUEUE_RCULFQ;
    o->nkinds = 2;
    while ((c = getopt(argc, argv, "n:r:b:k:h")) != -1) {
        switch (c) {
        case 'n':
            o->items = atol(optarg);
            break;
        case 'r':
            o->rounds = atoi(optarg);
            break;
        case 'b':
            o->batch = atoi(optarg);
            break;
        case 'k':
            if (strcmp(optarg, "both") == 0) {
                o->kinds[0] = SL_QUEUE_WFCQ;
                o->kinds[1] = SL_QUEUE_RCULFQ;
                o->nkinds = 2;
            } else {
                int k = sl_queue_kind_parse(optarg);
                if (k < 0)
                    usage();
                o->kinds[0] = k;
                o->nkinds = 1;
            }
            break;
        default:
            usage();
        }
    }
    if (o->items <= 0 || o->rounds <= 0 || o->rounds > MAX_ROUNDS || o->batch <= 0 ||
        o->batch > MAX_BATCH)
        usage();
    for (int i = optind; i < argc; i++) {
        struct shape sh;
        if (o->nshapes == MAX_SHAPES ||
            sscanf(argv[i], "%dx%d", &sh.prod, &sh.cons) != 2 || sh.prod <= 0 ||
            sh.cons <= 0 || sh.prod + sh.cons > MAX_THREADS)
            usage();
        o->shapes[o->nshapes++] = sh;
    }
    if (o->nshapes == 0) {
        o->shapes[0] = (struct shape){1, 1};
        o->shapes[1] = (struct shape){2, 2};
        o->nshapes = 2;
    }
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    static struct result med[MAX_SHAPES][2];
    static double tmp[3][MAX_ROUNDS];

    parse_args(argc, argv, &o);
    struct sl_qnode *nodes = calloc((size_t)o.items, sizeof(*nodes));
    if (nodes == NULL) {
        fprintf(stderr, "queue-bench: out of memory\n");
        return 1;
    }
    rcu_register_thread();
    printf("queue-bench: %ld items/round, %d rounds, batch %d, %ld CPUs\n", o.items,
           o.rounds, o.batch, sysconf(_SC_NPROCESSORS_ONLN));
    for (int s = 0; s < o.nshapes; s++) {
        struct shape sh = o.shapes[s];
        for (int k = 0; k < o.nkinds; k++) {
            enum sl_queue_kind kind = (enum sl_queue_kind)o.kinds[k];
            for (int rd = 0; rd < o.rounds; rd++) {
                struct result res;
                if (run_round(&o, kind, sh, nodes, &res) != SL_OK) {
                    fprintf(stderr, "queue-bench: queue init: %s\n", strerror(errno));
                    return 1;
                }
                printf("%dx%d %-6s round %d/%d: %7.2f Mitems/s  wait mean %9.1f us  "
                       "p99 %9.1f us\n",
                       sh.prod, sh.cons, sl_queue_kind_name(kind), rd + 1, o.rounds,
                       res.mips, res.wait_mean_us, res.wait_p99_us);
                fflush(stdout);
                tmp[0][rd] = res.mips;
                tmp[1][rd] = res.wait_mean_us;
                tmp[2][rd] = res.wait_p99_us;
            }
            med[s][k].mips = median(tmp[0], o.rounds);
            med[s][k].wait_mean_us = median(tmp[1], o.rounds);
            med[s][k].wait_p99_us = median(tmp[2], o.rounds);
        }
    }
    rcu_unregister_thread();

    printf("\nmedians over %d rounds\n", o.rounds);
    printf("%-6s %-7s %12s %14s %14s\n", "PxC", "kind", "Mitems/s", "wait mean us",
           "wait p99 us");
    for (int s = 0; s < o.nshapes; s++) {
        char name[32];
        snprintf(name, sizeof(name), "%dx%d", o.shapes[s].prod, o.shapes[s].cons);
        for (int k = 0; k < o.nkinds; k++)
            printf("%-6s %-7s %12.2f %14.1f %14.1f\n", name,
                   sl_queue_kind_name((enum sl_queue_kind)o.kinds[k]), med[s][k].mips,
                   med[s][k].wait_mean_us, med[s][k].wait_p99_us);
        if (o.nkinds == 2)
            printf("%-6s %-7s %12.2fx %13.2fx %13.2fx\n", name, "ratio",
                   med[s][1].mips / med[s][0].mips,
                   med[s][1].wait_mean_us / med[s][0].wait_mean_us,
                   med[s][1].wait_p99_us / med[s][0].wait_p99_us);
    }
    if (o.nkinds == 2)
        printf("(ratio = rculfq / wfcq; throughput > 1 means rculfq is faster, "
               "waits > 1 mean it queues longer)\n");
    free(nodes);
    return 0;
}
