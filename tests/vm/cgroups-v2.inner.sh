#!/bin/sh
# Inside the VM (see cgroups-v2.sh): /sys/fs/cgroup is the v2 root. Each check prints
# "ok - ..." or "FAIL - ..."; the script exits 1 if any failed.
set -u
fails=0
ok() { echo "ok - $*"; }
fail() { echo "FAIL - $*"; fails=$((fails + 1)); }
check() { # description, then a command that must succeed
	d=$1; shift
	if "$@"; then ok "$d"; else fail "$d"; fi
}
# has PATTERN: the last output (saved in /tmp/out) has a line matching PATTERN.
has() { grep -q -- "$1" /tmp/out; }
hasline() { grep -qx -- "$1" /tmp/out; }

[ -f /sys/fs/cgroup/cgroup.controllers ] || { echo "FAIL - not a cgroup v2 host"; exit 1; }
echo "controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"

work=/tmp/w; mkdir -p $work/rootfs/bin $work/rootfs/proc $work/rootfs/sys $work/rootfs/dev $work/rootfs/tmp
cp /bin/busybox $work/rootfs/bin/busybox
for a in sh cat echo sleep dd mknod head wc true rm; do ln -s busybox $work/rootfs/bin/$a; done
cd $work
R="--root $work/state"

# config.json for: process script, cgroupsPath, extra resources (JSON members) and capabilities.
mkconfig() { # script id resources-json
	caps='"CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE","CAP_MKNOD"'
	cat > config.json <<JSON
{"ociVersion":"1.0.2",
 "process":{"user":{"uid":0,"gid":0},"args":["sh","-c","$1"],"env":["PATH=/bin"],"cwd":"/",
  "capabilities":{"bounding":[$caps],"effective":[$caps],"permitted":[$caps]}},
 "root":{"path":"rootfs"},
 "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
  {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]},
  {"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","ro"]}],
 "linux":{"cgroupsPath":"/vm/$2",
  "resources":{"devices":[{"allow":false,"access":"rwm"}]$3},
  "namespaces":[{"type":"pid"},{"type":"mount"},{"type":"ipc"},{"type":"uts"},{"type":"cgroup"}]}}
JSON
}

# 1. Limits are written, the cgroup is the container's namespace root, delete removes it.
mkconfig 'cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max /sys/fs/cgroup/hugetlb.2MB.max' c1 \
	',"memory":{"limit":33554432},"pids":{"limit":20},"cpu":{"quota":50000,"period":100000,"shares":1024},"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]'
minc $R run -b . c1 > /tmp/out 2>&1; cat /tmp/out
check "container sees itself at its cgroup namespace root" [ "$(head -1 /tmp/out)" = "0::/" ]
check "memory.max inside" hasline 33554432
check "pids.max inside" hasline 20
check "cpu.max inside" hasline '50000 100000'
check "hugetlb.2MB.max inside" hasline 4194304
check "delete removed /sys/fs/cgroup/vm/c1" [ ! -e /sys/fs/cgroup/vm/c1 ]

# 2. OOM kill recorded in state.
mkconfig 'dd if=/dev/zero of=/dev/null bs=64M count=1' oom ',"memory":{"limit":16777216,"swap":16777216}'
minc $R create -b . oom && minc $R start oom
for i in $(seq 100); do minc $R state oom > /tmp/st; grep -q '"status": "stopped"' /tmp/st && break; sleep 0.1; done
minc $R state oom > /tmp/out; cat /tmp/out
check "OOM kill shows in state" has '"oomKilled": true'
check "memory.events counts it" grep -q 'oom_kill [1-9]' /sys/fs/cgroup/vm/oom/memory.events
minc $R delete oom

# 3. Device eBPF program: /dev/null works, a made block device cannot be opened.
mkconfig 'mknod /tmp/l b 7 0 && echo made; (exec 3</tmp/l) 2>&1; echo x > /dev/null && echo null-ok' dev ''
minc $R run -b . dev > /tmp/out 2>&1; cat /tmp/out
check "mknod allowed (m)" hasline made
check "block device open denied by the eBPF program" has 'Operation not permitted'
check "/dev/null usable" hasline null-ok

# 4. pids limit.
mkconfig '(for i in 1 2 3 4 5 6 7 8; do sleep 30 & done) 2>/tmp/e; read l < /tmp/e; echo $l; read c < /sys/fs/cgroup/pids.current; echo $c' pids ',"pids":{"limit":4}'
minc $R run -b . pids > /tmp/out 2>&1; cat /tmp/out
check "fork fails at the pids limit" has "can't fork"

# 5. pause / resume (cgroup.freeze), update, events, exec placement.
mkconfig 'while :; do :; done' busy ',"memory":{"limit":33554432}'
minc $R create -b . busy && minc $R start busy
usage() { sed -n 's/^usage_usec //p' /sys/fs/cgroup/vm/busy/cpu.stat; }
a=$(usage); sleep 1; b=$(usage)
check "busy loop uses CPU" [ "$b" -gt "$a" ]
minc $R pause busy
minc $R state busy > /tmp/out
check "state says paused" has '"status": "paused"'
check "cgroup.freeze is 1" [ "$(cat /sys/fs/cgroup/vm/busy/cgroup.freeze)" = 1 ]
a=$(usage); sleep 1; b=$(usage)
check "no CPU time while paused ($a -> $b)" [ "$b" -eq "$a" ]
minc $R resume busy
a=$(usage); sleep 1; b=$(usage)
check "CPU time again after resume" [ "$b" -gt "$a" ]
minc $R update --memory 64m --pids-limit 9 busy
check "update --memory" [ "$(cat /sys/fs/cgroup/vm/busy/memory.max)" = 67108864 ]
check "update --pids-limit" [ "$(cat /sys/fs/cgroup/vm/busy/pids.max)" = 9 ]
minc $R events --stats busy > /tmp/out
check "events --stats pids.current" has "\"pids\":{\"current\":$(cat /sys/fs/cgroup/vm/busy/pids.current),\"limit\":9}"
ex=$(minc $R exec busy cat /proc/self/cgroup)
check "exec'd process in the container's cgroup" [ "$ex" = "0::/" ]
minc $R delete -f busy
check "delete -f removed the cgroup" [ ! -e /sys/fs/cgroup/vm/busy ]

echo "$fails failed"
[ "$fails" -eq 0 ]
