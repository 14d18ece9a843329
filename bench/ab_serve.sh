#!/bin/bash
# Two pipdepot builds side by side on copies of one warm mirror: does a change cost page or file speed?
#
#   bench/ab_serve.sh A_PYTHON B_PYTHON MIRROR_DIR [ROUNDS]
#
# A_PYTHON, B_PYTHON: the python of a venv with each pipdepot installed (e.g. a worktree of the old
# commit, and this checkout's .venv); MIRROR_DIR: a warm mirror (bench/.work/data/pipdepot-warm after
# `bench/run installs`). Both serve --offline on loopback; wrk (8 s, 32 connections, gzip) alternates
# A and B on the requests and numpy pages, full and as pip 23.0.1's target view, then one wheel.
set -euo pipefail
a_py=$1 b_py=$2 mirror=$3 rounds=${4:-3}
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ua='pip/23.0.1 {"implementation":{"name":"CPython","version":"3.11.2"},"python":"3.11.2",'
ua+='"libc":{"lib":"glibc","version":"2.36"},"cpu":"x86_64","system":{"name":"Linux"}}'
port=18101
declare -A url
for side in A B; do
    python=$a_py
    [ "$side" = B ] && python=$b_py
    cp -a "$mirror" "$work/$side"
    env -i PATH=/usr/bin:/bin HOME="$work" "$python" -m pipdepot serve --mirror "$work/$side" --offline \
        --host 127.0.0.1 --port "$port" >"$work/$side.log" 2>&1 &
    pids+=($!)
    url[$side]=http://127.0.0.1:$port
    port=$((port + 1))
done
for side in A B; do
    for _ in $(seq 50); do curl -sf -o /dev/null "${url[$side]}/+health" && break; sleep 0.2; done
    for page in requests numpy; do  # warm: each page rendered once, full and as the view
        curl -sf -o /dev/null -H 'Accept-Encoding: gzip' "${url[$side]}/simple/$page/"
        curl -sf -o /dev/null -H 'Accept-Encoding: gzip' -H "User-Agent: $ua" "${url[$side]}/simple/$page/"
    done
done
rate() { wrk -t2 -c32 -d8s --latency -H 'Accept-Encoding: gzip' "$@" | awk '/Requests\/sec/{print $2}'; }
echo "round page side full_req_s view_req_s"
for round in $(seq "$rounds"); do
    for page in requests numpy; do
        for side in A B; do
            echo "$round $page $side $(rate "${url[$side]}/simple/$page/") $(rate -H "User-Agent: $ua" "${url[$side]}/simple/$page/")"
        done
    done
done
for side in A B; do
    href=$(curl -sf "${url[$side]}/simple/requests/" | grep -o 'href="[^"]*requests-2[^"]*\.whl' | tail -1)
    file=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urljoin(sys.argv[1], sys.argv[2]))' \
        "${url[$side]}/simple/requests/" "${href#href=\"}")
    echo "file $side $(wrk -t2 -c16 -d8s "$file" | awk '/Requests\/sec/{print $2}') req/s ${file##*/}"
done
