/* The task scheduler (pipeline/parallel.h): every task runs exactly once, a chunk runs on one
 * thread in increasing task order, thread ids stay below the thread count, several threads do
 * take part, the grain rule, and what num_threads = 0 means: the team OpenMP would use
 * (OMP_NUM_THREADS, affinity). CTest also runs this executable with OMP_NUM_THREADS=1 and 3 and
 * FAS_EXPECT_THREADS telling it the team size the operator must then run with. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, sched_yield */
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "fas_test.h"
#include "pipeline/parallel.h"

#if FAS_HAVE_OPENMP
#include <omp.h>
#endif

enum { MAX_TASKS = 1000 };

typedef struct record {
    int threads;
    _Atomic int runs[MAX_TASKS];
    int thread_of[MAX_TASKS];
    int64_t last[8]; /* per thread: last task run, -1 none */
    _Atomic bool order_ok, ids_ok;
    _Atomic int started; /* bit t: thread t has run a task */
    bool wait_for_all;
} record;

static void task(void *vctx, int thread, int64_t i)
{
    record *r = vctx;
    if (thread < 0 || thread >= r->threads) {
        r->ids_ok = false;
        return;
    }
    atomic_fetch_add(&r->runs[i], 1);
    r->thread_of[i] = thread;
    if (r->last[thread] >= i) r->order_ok = false;
    r->last[thread] = i;
    int all = (1 << r->threads) - 1;
    atomic_fetch_or(&r->started, 1 << thread);
    if (r->wait_for_all) {
        /* hold the first tasks until every thread has started one (at most 20 s) */
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (atomic_load(&r->started) != all) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if (t.tv_sec - t0.tv_sec > 20) break;
            sched_yield(); /* lets a serialising tool (valgrind) run the other threads */
        }
    }
}

static void run(int threads, int64_t ntasks, int64_t grain, bool wait_for_all)
{
    static record r;
    memset(&r, 0, sizeof r);
    r.threads = threads;
    r.order_ok = r.ids_ok = true;
    r.wait_for_all = wait_for_all;
    for (int t = 0; t < 8; t++) r.last[t] = -1;
    fasi_parallel_for(threads, ntasks, grain, task, &r);
    assert_true(r.ids_ok);
    assert_true(r.order_ok);
    for (int64_t i = 0; i < ntasks; i++) assert_int_equal(atomic_load(&r.runs[i]), 1);
    for (int64_t i = ntasks; i < MAX_TASKS; i++) assert_int_equal(atomic_load(&r.runs[i]), 0);
    /* a chunk stays on one thread */
    for (int64_t i = 0; i < ntasks; i++) {
        if (i % grain != 0) assert_int_equal(r.thread_of[i], r.thread_of[i - 1]);
    }
    if (wait_for_all) assert_int_equal(atomic_load(&r.started), (1 << threads) - 1);
}

static void test_every_task_once(void **state)
{
    (void)state;
    static const int64_t counts[] = {1, 2, 3, 15, 16, 17, 100, 999};
    static const int64_t grains[] = {1, 2, 4, 7, 64, 2000};
    for (int threads = 1; threads <= 4; threads++)
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++)
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++)
                run(threads, counts[c], grains[g], false);
}

/* With OpenMP, every requested thread takes part when there are enough chunks: each thread's
 * first task waits until all have started one, which only ends in time if they all run. */
static void test_threads_take_part(void **state)
{
    (void)state;
#if FAS_HAVE_OPENMP
    run(2, 64, 4, true);
    run(3, 90, 1, true);
#else
    skip();
#endif
}

static void test_grain(void **state)
{
    (void)state;
    /* one head of 4 blocks on 24 x 16 heads, 2 threads: whole heads */
    assert_int_equal(fasi_parallel_grain(24 * 16 * 4, 2, 4), 4);
    /* one head of 32 blocks: 16 chunks per thread */
    assert_int_equal(fasi_parallel_grain(32, 2, 32), 1);
    assert_int_equal(fasi_parallel_grain(1024, 2, 128), 32);
    for (int64_t n = 1; n <= 5000; n += 37)
        for (int threads = 1; threads <= 8; threads++)
            for (int64_t max = 1; max <= 64; max *= 2) {
                int64_t g = fasi_parallel_grain(n, threads, max);
                assert_true(g >= 1 && g <= max);
                if (g > 1) assert_true(n / g >= 16 * threads);
            }
}

/* The team an operator call ran with, counted inside its parallel region (not timed). */
static int team_of_call(int num_threads)
{
    /* 8 heads of 4 row blocks: 32 tasks, enough chunks for any team this test asks for */
    fas_tensor q = fast_tensor_4d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 1, 8, 512, 16);
    fas_tensor out = fast_tensor_2d(FAS_DTYPE_FLOAT16, FAS_FORMAT_ND, 512, 8 * 16);
    fas_options o;
    fas_options_init(&o);
    o.num_threads = num_threads;
    assert_int_equal(fused_attention_score_ex(&q, &q, &q, NULL, 0.125, 1.0, false, false, false,
                                              false, false, false, &out, &o),
                     FAS_OK);
    fast_tensor_free(&q);
    fast_tensor_free(&out);
    return fasi_parallel_last_team();
}

static void test_default_threads(void **state)
{
    (void)state;
#if FAS_HAVE_OPENMP
    int expected = omp_get_max_threads();
    const char *env = getenv("FAS_EXPECT_THREADS");
    if (env) expected = atoi(env);
    printf("[ INFO     ] OMP_NUM_THREADS=%s, omp_get_max_threads() = %d, expecting %d\n",
           getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "(unset)", omp_get_max_threads(),
           expected);
    assert_int_equal(team_of_call(0), expected);
    /* an explicit count wins over the environment */
    assert_int_equal(team_of_call(1), 1);
    assert_int_equal(team_of_call(2), 2);
#else
    /* a serial build runs every call on the calling thread */
    assert_int_equal(team_of_call(0), 1);
    assert_int_equal(team_of_call(2), 1);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_task_once),
        cmocka_unit_test(test_threads_take_part),
        cmocka_unit_test(test_grain),
        cmocka_unit_test(test_default_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
