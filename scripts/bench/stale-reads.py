#!/usr/bin/env python3
"""Stale availability reads on a follower while the leader takes holds (issue 14's target:
>= 50,000 summary reads a second with wrk on a follower while the leader takes holds at
full speed).

Starts NODES real `holdfast serve` processes on 127.0.0.1 (data under --data-dir, every
append fsynced), creates an event of SEATS seats (section S, 1,000 a row), then runs, each
for --duration seconds after a --warmup:
  1. reads alone:  wrk GET /availability?view=summary&consistency=stale on a follower;
  2. holds alone:  wrk POST /booking/hold (one random seat each) on the leader;
  3. both at once: the two wrk runs side by side.
Prints one line per run (for holds also how many a Raft entry carried on average, from the
leader's committed index) and a last line `STALE_READS {json}`. Installs nothing: needs wrk.

  python3 scripts/bench/stale-reads.py target/release/holdfast [--seats 1000000]
"""
import argparse, json, os, re, shutil, signal, socket, subprocess, tempfile, time
import urllib.error, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def call(method, url, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError as error:
        return None, str(error)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(predicate, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


class Node:
    def __init__(self, binary, node_id, base):
        self.id, self.http, self.raft = node_id, free_port(), free_port()
        env = dict(os.environ, HOLDFAST_ALLOW_SANDBOX_PAYMENTS="true")
        self.log = open(os.path.join(base, f"n{node_id}.log"), "ab")
        self.proc = subprocess.Popen(
            [binary, "serve", "--id", str(node_id), "--http-addr", f"127.0.0.1:{self.http}",
             "--raft-addr", f"127.0.0.1:{self.raft}", "--data-dir", os.path.join(base, f"n{node_id}")],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.http}"

    def member(self):
        return {"id": self.id, "raft_addr": f"127.0.0.1:{self.raft}",
                "http_addr": f"127.0.0.1:{self.http}", "region": f"r{self.id}"}

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def wrk_command(script, url, seconds, connections, threads, args):
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", os.path.join(HERE, script),
            url, "--", *args]


def figures(output):
    match = re.search(r"RESULT ops=(\d+) held=(\d+) taken=(\d+) other=(\d+) "
                      r"p50=([\d.]+) p99=([\d.]+) p999=([\d.]+)", output)
    if not match:
        raise SystemExit(f"no RESULT line from wrk:\n{output}")
    names = ["ops", "ok", "conflicts", "other", "p50_ms", "p99_ms", "p999_ms"]
    return {name: float(value) for name, value in zip(names, match.groups())}


def run(commands):
    """Runs the wrk commands side by side; their figures in the same order."""
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, text=True) for c in commands]
    return [figures(p.communicate()[0]) for p in procs]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--seats", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--read-connections", type=int, default=64)
    parser.add_argument("--hold-connections", type=int, default=64)
    parser.add_argument("--holds-only", action="store_true", help="only the run of holds alone")
    parser.add_argument("--wrk-threads", type=int, default=2, help="threads of each wrk")
    parser.add_argument("--data-dir", default="/var/tmp", help="a real disk: fsync on tmpfs costs nothing")
    a = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk (apt-get install wrk)")
    base = tempfile.mkdtemp(prefix="holdfast-stale-reads-", dir=a.data_dir)
    nodes = [Node(os.path.abspath(a.binary), i + 1, base) for i in range(a.nodes)]
    try:
        for n in nodes:
            wait(lambda: call("GET", n.url + "/healthz", timeout=2)[0] == 200, f"node {n.id} healthy")
        status, body = call("POST", nodes[0].url + "/cluster/init", {"members": [n.member() for n in nodes]})
        if status not in (200, 201):
            raise SystemExit(f"cluster init: {status} {body}")

        def leader_id():
            for n in nodes:
                status, s = call("GET", n.url + "/cluster/status", timeout=3)
                if status == 200 and s.get("leader_id"):
                    return s["leader_id"]
        leader = next(n for n in nodes if n.id == wait(leader_id, "a leader"))
        follower = next(n for n in nodes if n.id != leader.id)
        rows = (a.seats + 999) // 1000
        status, body = call("POST", leader.url + "/admin/events", {
            "event_id": "bench", "name": "stale reads bench", "category": "event",
            "starts_at": "2030-01-01T20:00:00Z", "currency": "EUR",
            "seat_blocks": [{"section": "S", "rows": [str(r) for r in range(rows)],
                             "seats_per_row": 1000, "price": 1000}]}, timeout=300)
        if status not in (200, 201):
            raise SystemExit(f"create event: {status} {body}")
        wait(lambda: call("GET", follower.url + "/availability?event_id=bench&view=summary&consistency=stale")[0] == 200,
             "the event on the follower")
        # Holds through a follower would measure forwarding: follow a leader that changed.
        now_leading = wait(leader_id, "a leader")
        if now_leading != leader.id:
            print(f"the leader changed while the event was created: node {now_leading} now", flush=True)
            leader = next(n for n in nodes if n.id == now_leading)
            follower = next(n for n in nodes if n.id != leader.id)
        reads = lambda s: wrk_command("summary.lua", follower.url, s, a.read_connections, a.wrk_threads, ["bench"])
        holds = lambda s: wrk_command("hold.lua", leader.url, s, a.hold_connections, a.wrk_threads,
                                         [str(rows * 1000), "bench"])
        print(f"{a.nodes} nodes, leader {leader.id}, reads on follower {follower.id}, {rows * 1000} seats, "
              f"{a.duration} s a run, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}", flush=True)
        results = {}
        runs = [("reads_alone", [reads]), ("holds_alone", [holds]), ("both", [reads, holds])]
        if a.holds_only:
            runs = runs[1:2]
        committed = lambda: call("GET", leader.url + "/cluster/status")[1]["committed_index"]
        for name, commands in runs:
            run([c(a.warmup) for c in commands])
            first = committed()
            figures_of_run = run([c(a.duration) for c in commands])
            entries = committed() - first
            if name != "reads_alone":
                holds_figures = figures_of_run[-1]
                holds_figures["holds_per_entry"] = round(
                    (holds_figures["ok"] + holds_figures["conflicts"]) / max(entries, 1), 1)
            if name == "both":
                results["both_reads"], results["both_holds"] = figures_of_run
            else:
                results[name] = figures_of_run[0]
        for name, f in results.items():
            print(f"{name:12} {f['ops']:>9,.0f}/s  p50 {f['p50_ms']:6.2f} ms  p99 {f['p99_ms']:7.2f} ms  "
                  f"p99.9 {f['p999_ms']:7.2f} ms  other answers {f['other']:.0f}"
                  + (f"  holds per Raft entry {f['holds_per_entry']}" if "holds_per_entry" in f else ""))
        print("STALE_READS " + json.dumps(results))
    finally:
        for n in nodes:
            n.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
