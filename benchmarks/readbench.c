/*
 * readbench: how many times per second can a file be opened, read to EOF
 * and closed? (With -p, pause that long after each iteration: a paced reader,
 * to see what a daemon spends per request when requests do not come back to
 * back; the rate then mostly measures the pause.)
 *
 *   readbench [-d SECONDS] [-w SECONDS] [-b BYTES] [-p MICROSECONDS] PATH...
 *
 * For each PATH: loop open/read-until-EOF/close for a warm-up period (not
 * counted), then for the measured period, and print one line:
 *
 *   PATH OPS ELAPSED_S OPS_PER_S MIN_BYTES MAX_BYTES
 *
 * Only complete, successful iterations are counted; any failing syscall
 * (including a short close) aborts the run with exit status 1, so a broken
 * mount can never look fast. Built static so it runs in any container image.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		perror("clock_gettime");
		exit(1);
	}
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One open/read-to-EOF/close; returns the bytes read, exits on any error. */
static size_t once(const char *path, char *buf, size_t size)
{
	size_t total = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "readbench: open %s: %s\n", path, strerror(errno));
		exit(1);
	}
	for (;;) {
		ssize_t n = read(fd, buf, size);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "readbench: read %s: %s\n", path, strerror(errno));
			exit(1);
		}
		if (n == 0)
			break;
		total += (size_t)n;
	}
	if (close(fd) != 0) {
		fprintf(stderr, "readbench: close %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return total;
}

static void pause_for(double seconds)
{
	if (seconds <= 0)
		return;
	struct timespec ts = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static double parse_seconds(const char *text, const char *what)
{
	char *end;
	double value = strtod(text, &end);
	if (*text == '\0' || *end != '\0' || value < 0) {
		fprintf(stderr, "readbench: bad %s: %s\n", what, text);
		exit(2);
	}
	return value;
}

int main(int argc, char **argv)
{
	double duration = 1.0, warmup = 0.2;
	size_t size = 65536;
	double pause = 0;
	int opt;

	while ((opt = getopt(argc, argv, "d:w:b:p:")) != -1) {
		switch (opt) {
		case 'd':
			duration = parse_seconds(optarg, "duration");
			break;
		case 'w':
			warmup = parse_seconds(optarg, "warm-up");
			break;
		case 'b':
			size = (size_t)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			pause = parse_seconds(optarg, "pause") / 1e6;
			break;
		default:
			fprintf(stderr, "usage: %s [-d SECONDS] [-w SECONDS] [-b BYTES] [-p MICROSECONDS] PATH...\n", argv[0]);
			return 2;
		}
	}
	if (optind >= argc || size == 0 || duration <= 0) {
		fprintf(stderr, "usage: %s [-d SECONDS] [-w SECONDS] [-b BYTES] [-p MICROSECONDS] PATH...\n", argv[0]);
		return 2;
	}
	char *buf = malloc(size);
	if (buf == NULL) {
		perror("malloc");
		return 1;
	}
	for (int i = optind; i < argc; i++) {
		const char *path = argv[i];
		double end = now() + warmup;
		do {
			once(path, buf, size);
			pause_for(pause);
		} while (now() < end);

		unsigned long long ops = 0;
		size_t min_bytes = (size_t)-1, max_bytes = 0;
		double start = now(), t;
		end = start + duration;
		do {
			size_t got = once(path, buf, size);
			ops++;
			if (got < min_bytes)
				min_bytes = got;
			if (got > max_bytes)
				max_bytes = got;
			pause_for(pause);
			t = now();
		} while (t < end);
		double elapsed = t - start;
		printf("%s %llu %.6f %.1f %zu %zu\n", path, ops, elapsed, ops / elapsed, min_bytes, max_bytes);
		fflush(stdout);
	}
	free(buf);
	return 0;
}
