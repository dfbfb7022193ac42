#!/usr/bin/env python3
"""Creates a large event while readers poll every node, and reports the term before and
after: a node that stalls while the creation applies (its async workers all waiting on the
state's lock) stops hearing its leader, and an election follows.

  python3 scripts/bench/big-event.py BIN/holdfast [--seats 2000000] [--readers 4]

Starts three nodes with data under /var/tmp (as stale-reads.py does), creates a small event,
starts READERS threads per node polling its stale availability, creates an event of SEATS
seats (rows of 1,000, up to 1,000 rows per block) through the leader, and prints how long
the creation took and each node's term afterwards. Term 1 everywhere: no election.
"""
import argparse, importlib.util, os, shutil, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("stale_reads", os.path.join(HERE, "stale-reads.py"))
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--seats", type=int, default=2_000_000)
    parser.add_argument("--readers", type=int, default=4, help="polling threads per node")
    a = parser.parse_args()
    base = tempfile.mkdtemp(prefix="holdfast-big-event-", dir="/var/tmp")
    nodes = [tool.Node(os.path.abspath(a.binary), i + 1, base) for i in range(3)]
    stop = threading.Event()
    try:
        for n in nodes:
            tool.wait(lambda: tool.call("GET", n.url + "/healthz", timeout=2)[0] == 200, f"node {n.id}")
        tool.call("POST", nodes[0].url + "/cluster/init", {"members": [n.member() for n in nodes]})

        def leader_id():
            for n in nodes:
                status, s = tool.call("GET", n.url + "/cluster/status", timeout=3)
                if status == 200 and s.get("leader_id"):
                    return s["leader_id"]
        leader = next(n for n in nodes if n.id == tool.wait(leader_id, "a leader"))
        tool.call("POST", leader.url + "/admin/events", {
            "event_id": "small", "name": "small", "category": "event", "currency": "EUR",
            "starts_at": "2030-01-01T20:00:00Z", "pools": [{"id": "GA", "capacity": 5, "price": 1}]})

        def poll(node):
            while not stop.is_set():
                tool.call("GET", node.url + "/availability?event_id=small&view=summary&consistency=stale", timeout=30)
        readers = [threading.Thread(target=poll, args=(n,), daemon=True) for n in nodes for _ in range(a.readers)]
        for reader in readers:
            reader.start()
        rows = (a.seats + 999) // 1000
        blocks = [{"section": f"S{b}", "rows": [str(r) for r in range(b * 1000, min(rows, (b + 1) * 1000))],
                   "seats_per_row": 1000, "price": 1000} for b in range((rows + 999) // 1000)]
        started = time.time()
        status, body = tool.call("POST", leader.url + "/admin/events", {
            "event_id": "big", "name": "big", "category": "event", "currency": "EUR",
            "starts_at": "2030-01-01T20:00:00Z", "seat_blocks": blocks}, timeout=300)
        took = time.time() - started
        if status not in (200, 201):
            raise SystemExit(f"create event: {status} {body}")
        time.sleep(2)
        stop.set()
        terms = {n.id: tool.call("GET", n.url + "/cluster/status", timeout=5)[1].get("term") for n in nodes}
        print(f"{a.seats} seats created in {took:.2f} s with {a.readers} readers per node; terms after: {terms}")
    finally:
        stop.set()
        for n in nodes:
            n.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
