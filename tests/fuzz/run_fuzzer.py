"""Runs one libFuzzer target for a while and prints one summary line: executions, coverage
(edges and features), corpus, and how much of the project's own code the inputs reached
(functions in daemon/ and plugins/, from -print_coverage). The full log is printed when the
fuzzer fails (a crash, a leak, a timeout); its reproducer is left in the working directory.

Usage: run_fuzzer.py FUZZER SECONDS CORPUS_DIR [SEED_DIR ...] [-flag=value ...]
(arguments starting with - are passed to libFuzzer: -max_len, -dict)
"""
import os
import re
import subprocess
import sys


def main():
    fuzzer, seconds, corpus = sys.argv[1], sys.argv[2], sys.argv[3]
    seeds = [a for a in sys.argv[4:] if not a.startswith("-")]
    flags = [a for a in sys.argv[4:] if a.startswith("-")]
    os.makedirs(corpus, exist_ok=True)
    name = os.path.basename(fuzzer)
    p = subprocess.run([fuzzer, "-max_total_time=" + seconds, "-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1",
                        "-print_coverage=1"] + flags + [corpus] + seeds, capture_output=True, text=True, errors="replace")
    log = p.stdout + p.stderr
    done = re.search(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)", log)
    per_file = {}
    for m in re.finditer(r"^(UN)?COVERED_FUNC: hits: \d+ edges: (\d+)/(\d+) .* (/\S+):\d+$", log, re.M):
        path = m.group(4)
        rel = re.search(r"/((daemon|plugins)/.+)$", path)
        if not rel:
            continue
        covered, total = per_file.get(rel.group(1), (0, 0))
        per_file[rel.group(1)] = (covered + int(m.group(2)), total + int(m.group(3)))
    reached = {f: v for f, v in per_file.items() if v[0] > 0}
    covered = sum(v[0] for v in reached.values())
    total = sum(v[1] for v in reached.values())
    if p.returncode != 0 or not done:
        print(log[-20000:])
        print("%s: FAILED (exit %d)" % (name, p.returncode))
        return 1
    secs = float(seconds)
    print("%s: %s executions in %s s (%d/s), coverage %s edges, %s features, corpus %s inputs (%s); our code reached: "
          "%d source files, %d of %d edges in them (%.0f%%): %s"
          % (name, done.group(1), seconds, int(done.group(1)) / secs, done.group(2), done.group(3), done.group(4),
             done.group(5), len(reached), covered, total, 100.0 * covered / max(total, 1),
             ", ".join("%s %d/%d" % (f, c, t) for f, (c, t) in sorted(reached.items(), key=lambda x: -x[1][0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
