/*
 * The library's own descriptors: where they are numbered (above the
 * program's soft RLIMIT_NOFILE, when the hard limit leaves room), what a
 * forked child gets back, and the bitmap that protects them from the
 * program's closes.  Each test runs in a process of its own (Check forks),
 * so each starts with the module's state and the limits fresh.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ownfd.h"

#define LOW 64

/* Lowers the soft limit to soft; false when the hard limit is too low. */
static bool set_soft(rlim_t soft)
{
	struct rlimit rl;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < soft)
		return false;
	rl.rlim_cur = soft;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	return true;
}

/*
 * Starts the module under a soft limit of LOW; false when the hard limit
 * is below 4 * LOW, which leaves no room to test in.
 */
static bool start_under_low_soft(void)
{
	if (!set_soft(4 * LOW))
		return false;
	ck_assert(set_soft(LOW));
	rudp__ownfd_init();
	return true;
}

static rlim_t soft_now(void)
{
	struct rlimit rl;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	return rl.rlim_cur;
}

static bool is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static int devnull(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	return fd;
}

START_TEST(test_ownfd_adopt_moves_ours_above_the_old_soft_limit)
{
	if (!start_under_low_soft())
		return;
	struct rlimit rl;
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_uint_gt(rl.rlim_cur, LOW);
	ck_assert_uint_le(rl.rlim_cur, rl.rlim_max);

	int low = devnull();
	ck_assert_int_lt(low, LOW);
	int ours = rudp__ownfd_adopt(low);
	ck_assert_int_ge(ours, LOW);
	ck_assert(is_open(ours));
	ck_assert(!is_open(low)); /* the low number is the program's again */
	ck_assert(rudp__ownfd_has(ours));
	ck_assert(!rudp__ownfd_has(low));
	ck_assert_int_eq(fcntl(ours, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	rudp__ownfd_close(ours);
	ck_assert(!is_open(ours));
	ck_assert(!rudp__ownfd_has(ours));
}
END_TEST

START_TEST(test_ownfd_dup_lands_above_and_keeps_the_original)
{
	if (!start_under_low_soft())
		return;
	int prog = devnull();
	int copy = rudp__ownfd_dup(prog);
	ck_assert_int_ge(copy, LOW);
	ck_assert(is_open(prog));
	ck_assert(rudp__ownfd_has(copy));
	ck_assert(!rudp__ownfd_has(prog));
}
END_TEST

START_TEST(test_ownfd_negative_fd_is_passed_through)
{
	errno = EMFILE;
	ck_assert_int_eq(rudp__ownfd_adopt(-1), -1);
	ck_assert_int_eq(errno, EMFILE); /* the caller reports the failure */
}
END_TEST

START_TEST(test_ownfd_fork_child_gets_the_old_limit_back)
{
	if (!start_under_low_soft())
		return;
	ck_assert_uint_gt(soft_now(), LOW);
	rudp__ownfd_fork_child();
	ck_assert_uint_eq(soft_now(), LOW);
	/* And the child numbers its own anywhere until it starts afresh. */
	int fd = devnull();
	ck_assert_int_eq(rudp__ownfd_adopt(fd), fd);
}
END_TEST

START_TEST(test_ownfd_fork_child_keeps_a_limit_the_program_set)
{
	if (!start_under_low_soft())
		return;
	ck_assert(set_soft(2 * LOW));
	rudp__ownfd_fork_child();
	ck_assert_uint_eq(soft_now(), 2 * LOW);
}
END_TEST

START_TEST(test_ownfd_no_room_when_soft_equals_hard)
{
	struct rlimit rl;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = rl.rlim_max;
	/* A hard limit above what a process may have cannot be the soft. */
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	rudp__ownfd_init();
	ck_assert_uint_eq(soft_now(), rl.rlim_max);
	int fd = devnull();
	ck_assert_int_eq(rudp__ownfd_adopt(fd), fd);
	ck_assert(rudp__ownfd_has(fd));
}
END_TEST

/* ownfd.c leaves a soft limit above 16384 alone (room enough). */
START_TEST(test_ownfd_high_soft_limit_left_alone)
{
	if (!set_soft(16385 + 1))
		return;
	ck_assert(set_soft(16385));
	rudp__ownfd_init();
	ck_assert_uint_eq(soft_now(), 16385);
	int fd = devnull();
	ck_assert_int_eq(rudp__ownfd_adopt(fd), fd);
}
END_TEST

START_TEST(test_ownfd_next_walks_ours_in_order)
{
	rudp__ownfd_add(7);
	rudp__ownfd_add(70);
	rudp__ownfd_add(700);
	ck_assert_int_eq(rudp__ownfd_next(0), 7);
	ck_assert_int_eq(rudp__ownfd_next(8), 70);
	ck_assert_int_eq(rudp__ownfd_next(70), 70);
	ck_assert_int_eq(rudp__ownfd_next(71), 700);
	ck_assert_int_eq(rudp__ownfd_next(701), -1);
	rudp__ownfd_del(70);
	ck_assert_int_eq(rudp__ownfd_next(8), 700);
	/* Numbers past the bitmap are never ours. */
	rudp__ownfd_add(RUDP__OWNFD_MAX);
	ck_assert(!rudp__ownfd_has(RUDP__OWNFD_MAX));
}
END_TEST

static Suite *ownfd_suite(void)
{
	Suite *s = suite_create("ownfd");
	TCase *room = tcase_create("ours_above_the_programs");
	TCase *child = tcase_create("a_forked_child");
	TCase *alone = tcase_create("limits_left_alone");
	TCase *bits = tcase_create("the_bitmap");

	tcase_add_test(room, test_ownfd_adopt_moves_ours_above_the_old_soft_limit);
	tcase_add_test(room, test_ownfd_dup_lands_above_and_keeps_the_original);
	tcase_add_test(room, test_ownfd_negative_fd_is_passed_through);
	tcase_add_test(child, test_ownfd_fork_child_gets_the_old_limit_back);
	tcase_add_test(child, test_ownfd_fork_child_keeps_a_limit_the_program_set);
	tcase_add_test(alone, test_ownfd_no_room_when_soft_equals_hard);
	tcase_add_test(alone, test_ownfd_high_soft_limit_left_alone);
	tcase_add_test(bits, test_ownfd_next_walks_ours_in_order);
	suite_add_tcase(s, room);
	suite_add_tcase(s, child);
	suite_add_tcase(s, alone);
	suite_add_tcase(s, bits);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ownfd_suite());

	int failed;

	/* Each test changes the process's limits: one process per test. */
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
