"""
Out of file descriptors (issue 26 hole 6): skuld runs with RLIMIT_NOFILE 200
(soft and hard, so its start-up raise cannot lift it) and 400 clients connect
and stay idle. accept() then fails with EMFILE; the listening socket stays
readable, and a listener that simply tries again spins a core and logs every
failure (measured before the fix: 186% CPU and 2.4 million log lines in 4 s).

Expected: the listener pauses (a 50 ms backoff doubling to 1 s), so the
gateway's CPU stays low while the clients sit there and stderr gets a line or
two, not thousands; skuld_accept_paused_total counts the pauses. Connections
left in the kernel backlog are served once descriptors free up: every one of
the 400 gets its /healthz answer, and afterwards /healthz and a chat
completion work on new connections -- no restart.
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

NOFILE = 200
CLIENTS = 400


class LimitedSkuld(H.Skuld):
    """skuld serve under prlimit (which execs it: the pid is skuld's)."""

    def command(self, port):
        return ["prlimit", "--nofile=%d:%d" % (NOFILE, NOFILE), "--"] + super().command(port)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, stime field 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class FdExhaustionTest(H.MockTest):
    def test_accept_pauses_and_service_resumes(self):
        H.raise_nofile(4 * CLIENTS)
        cfg = H.base_config(self.mock, server={"workers": 2, "client_idle_timeout": "60s"})
        gw = LimitedSkuld(cfg)
        socks = []
        try:
            with open("/proc/%d/limits" % gw.pid) as f:
                self.assertRegex(f.read(), r"Max open files\s+%d\s+%d" % (NOFILE, NOFILE))
            log0 = len(gw.stderr())
            for _ in range(CLIENTS):
                socks.append(socket.create_connection((H.HOST, gw.port), timeout=10))
            # the gateway takes descriptors until none is left
            H.wait_until(lambda: open_fds(gw.pid) >= NOFILE - 2, 10,
                         what="skuld to run out of descriptors (%d open)" % open_fds(gw.pid))
            time.sleep(0.3)
            t0, c0 = time.monotonic(), cpu_seconds(gw.pid)
            time.sleep(2.0)
            t1, c1 = time.monotonic(), cpu_seconds(gw.pid)
            share = (c1 - c0) / (t1 - t0)
            log = gw.stderr()[log0:]
            self.assertLess(share, 0.15, "skuld used %.0f%% CPU with no descriptor left; "
                            "log grew by %d bytes" % (share * 100, len(log)))
            lines = log.splitlines()
            self.assertLessEqual(len(lines), 6, "log grew by %d lines:\n%s" % (
                len(lines), "\n".join(lines[:10])))
            self.assertNotIn("Error from accept() call", log)
            self.assertTrue(any("Too many open files" in ln for ln in lines),
                            "no line says why connections wait:\n%s" % log)
            self.assertTrue(gw.alive())

            # every client, accepted or still in the backlog, gets its answer:
            # answered connections close and free descriptors for the rest
            for s in socks:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            deadline = time.monotonic() + 30
            for i, s in enumerate(socks):
                s.settimeout(max(0.1, deadline - time.monotonic()))
                data = b""
                try:
                    while True:
                        b = s.recv(4096)
                        if not b:
                            break
                        data += b
                except socket.timeout:
                    pass
                self.assertTrue(data.startswith(b"HTTP/1.1 200"),
                                "client %d of %d got %r" % (i, CLIENTS, data[:80]))
                s.close()
            socks = []

            r = H.request(gw.port, "GET", "/healthz", timeout=5)
            self.assertEqual(r.status, 200)
            r = H.chat(gw.port, timeout=10)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json()["object"], "chat.completion")
            samples, types = H.metrics_parse(gw.metrics())
            self.assertEqual(types.get("skuld_accept_paused_total"), "counter")
            paused = H.metric(samples, "skuld_accept_paused_total")
            self.assertGreaterEqual(paused, 1)
            # 2 s of backoff (50 ms doubling to 1 s) is a handful of pauses per worker
            self.assertLess(paused, 60, "the listener paused %d times" % paused)
        finally:
            for s in socks:
                s.close()
            rc = gw.stop()
        self.assertEqual(rc, 0, gw.describe())


if __name__ == "__main__":
    H.main()
