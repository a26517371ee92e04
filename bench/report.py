"""Prints a bench's table from hyperfine's JSON export and the peak RSS measured per tool.

Usage: python3 bench/report.py TIMES_JSON FIRST_COLUMN SECOND NAME... -- RSS_KB...
FIRST_COLUMN is the header of the name column (runtime, tool); SECOND is `mean` or `min`,
the statistic shown beside the median. Ratios are against the first name (minc).
"""
import json
import statistics
import sys

times, first, second = sys.argv[1:4]
args = sys.argv[4:]
sep = args.index("--")
names, rss = args[:sep], args[sep + 1:]
res = {r["command"]: r for r in json.load(open(times))["results"]}
base = statistics.median(res[names[0]]["times"])
stat = statistics.mean if second == "mean" else min
print(f"{first:8} {'median':>10} {second:>10} {'vs ' + names[0]:>8} {'peak RSS':>9}")
for n, kb in zip(names, rss):
    t = res[n]["times"]
    med = statistics.median(t)
    print(f"{n:8} {med*1000:8.2f}ms {stat(t)*1000:8.2f}ms {med/base:7.2f}x {int(kb)/1024:7.1f}MB")
