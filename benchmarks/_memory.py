"""Process memory as the benchmarks measure it (no Django: a benchmark's child process imports it cheaply)."""


def rss_anon():
    """This process's anonymous resident memory in bytes (/proc/self/status RssAnon): heap and arrays, not the page
    cache that a memory-mapped file is read through."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status (Linux only)")
