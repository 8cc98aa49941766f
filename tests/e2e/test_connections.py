"""Connection handling: keep-alive, pipelining, close, slow and vanishing clients, many idle sockets."""
import json
import re
import time
import unittest

from harness import DaemonTestCase, RawClient, decode_segment, http_request

IDLE_CONNECTIONS = 300


def jwt_request(sub, headers=()):
    return http_request("POST", "/v1/jwt", json.dumps({"sub": sub}).encode(),
                        ["Content-Type: application/json", *headers])


def sub_of(answer):
    return decode_segment(answer.json["jwt"].split(".")[1])["sub"]


class ConnectionTest(DaemonTestCase):
    def test_keep_alive_serves_several_requests_on_one_connection(self):
        with self.daemon.raw() as conn:
            for i in range(5):
                answer = conn.send(jwt_request(f"user-{i}")).response()
                self.assertIsNotNone(answer, f"connection closed after {i} requests")
                self.assertEqual(answer.status, 200, answer)
                self.assertEqual(sub_of(answer), f"user-{i}")
                self.assertNotEqual(answer.headers.get("connection", "").lower(), "close")
            self.assertFalse(conn.closed_by_peer(within=0.5), "a keep-alive connection was closed")

    def test_pipelined_requests_are_answered_in_order(self):
        with self.daemon.raw() as conn:
            conn.send(jwt_request("first") + http_request("GET", "/v1/keys") + jwt_request("third"))
            first, second, third = conn.response(), conn.response(), conn.response()
            self.assertTrue(all((first, second, third)), "fewer than three answers")
            self.assertEqual([first.status, second.status, third.status], [200, 200, 200])
            self.assertEqual(sub_of(first), "first")
            self.assertIn("keys", second.json)
            self.assertEqual(sub_of(third), "third")

    def test_connection_close_is_honoured(self):
        with self.daemon.raw() as conn:
            answer = conn.send(jwt_request("user-1", ["Connection: close"])).response()
            self.assertEqual(answer.status, 200, answer)
            self.assertTrue(conn.closed_by_peer(), "the daemon kept a Connection: close connection open")

    def test_a_client_that_connects_and_vanishes_does_no_harm(self):
        for goodbye in (b"", b"POST /v1/jwt HTTP/1.1\r\nHost: localhost\r\nContent-Le",
                        jwt_request("never-read") * 3):
            with self.subTest(sent=len(goodbye)):
                conn = RawClient(self.daemon.socket_path)
                if goodbye:
                    conn.send(goodbye)
                conn.close()  # the daemon may be writing answers nobody reads: SIGPIPE must not kill it
                self.assertStillServes()
        self.assertIsNone(self.daemon.process.poll(), "the daemon died")
        deadline = time.monotonic() + 3
        while self.connections_gauge() > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.connections_gauge(), 1, "closed connections still counted")

    def connections_gauge(self):
        text = self.daemon.get("/metrics").body.decode()
        return int(re.search(r"(?m)^hsmsignd_connections (\d+)$", text).group(1))

    def test_many_idle_connections_do_not_stop_a_good_client(self):
        idle = [RawClient(self.daemon.socket_path) for _ in range(IDLE_CONNECTIONS)]
        try:
            started = time.monotonic()
            for i in range(5):
                self.assertEqual(self.daemon.post("/v1/jwt", {"sub": f"busy-{i}"}, timeout=5).status, 200)
            self.assertLess(time.monotonic() - started, 2.0, "five tokens took too long beside idle connections")
            # The idle ones were accepted, not just queued: each of a sample is served
            for conn in (idle[0], idle[IDLE_CONNECTIONS // 2], idle[-1]):
                self.assertEqual(conn.send(http_request("GET", "/healthz")).response().status, 200)
            # /metrics counts them (and the connection asking)
            self.assertGreaterEqual(self.connections_gauge(), IDLE_CONNECTIONS + 1)
        finally:
            for conn in idle:
                conn.close()
        self.assertStillServes()
        self.assertIsNone(self.daemon.process.poll(), "the daemon died")


class SlowClientTest(DaemonTestCase):
    # request_timeout bounds a started request, idle_timeout an idle keep-alive connection.
    DAEMON = dict(server={"request_timeout": "2s", "idle_timeout": "3s"})

    def test_a_request_completed_within_the_timeout_is_served(self):
        data = jwt_request("slow-but-fine")
        with self.daemon.raw() as conn:
            conn.send(data[:40])
            time.sleep(1.0)
            answer = conn.send(data[40:]).response()
            self.assertEqual(answer.status, 200, answer)

    def test_a_stalled_request_gets_408_and_is_closed(self):
        data = jwt_request("stalled")
        for cut, where in ((len(data) - 5, "in the body"), (30, "in the header")):
            with self.subTest(stalled=where), self.daemon.raw() as conn:
                started = time.monotonic()
                conn.send(data[:cut])
                answer = conn.response()
                waited = time.monotonic() - started
                self.assertIsNotNone(answer, "closed without a 408")
                self.assertError(answer, 408, "timeout")
                self.assertTrue(1.5 <= waited <= 5.0, f"408 after {waited:.1f}s with request_timeout 2s")
                self.assertTrue(conn.closed_by_peer())
        self.assertStillServes()

    def test_an_idle_keep_alive_connection_is_closed_after_idle_timeout(self):
        with self.daemon.raw() as conn:
            self.assertEqual(conn.send(http_request("GET", "/healthz")).response().status, 200)
            self.assertFalse(conn.closed_by_peer(within=1.5), "closed long before idle_timeout")
            self.assertTrue(conn.closed_by_peer(within=4.0), "still open well after idle_timeout 3s")


class DeadlineTest(DaemonTestCase):
    """A connection keeps one timer and moves a deadline: the timer fires at the old deadline when the new
    one is later (idle after a request), and is re-armed when the new one is earlier (a request after an
    idle spell). Either mistake shows here as a close at the wrong time."""
    DAEMON = dict(server={"request_timeout": "1s", "idle_timeout": "4s"})

    def test_an_idle_keep_alive_connection_outlives_request_timeout(self):
        with self.daemon.raw() as conn:
            self.assertEqual(conn.send(jwt_request("first")).response().status, 200)
            # The answer's write armed request_timeout; waiting idle moved the deadline 4s out.
            self.assertFalse(conn.closed_by_peer(within=2.5), "closed at request_timeout while idle")
            self.assertEqual(conn.send(jwt_request("second")).response().status, 200)
            self.assertTrue(conn.closed_by_peer(within=6.0), "still open well after idle_timeout 4s")

    def test_a_request_stalled_after_an_idle_spell_times_out_at_request_timeout(self):
        data = jwt_request("stalled-after-idle")
        with self.daemon.raw() as conn:
            self.assertEqual(conn.send(jwt_request("first")).response().status, 200)
            time.sleep(1.5)  # idle: the deadline is idle_timeout, ~2.5s away
            started = time.monotonic()
            conn.send(data[:30])
            answer = conn.response()
            waited = time.monotonic() - started
            self.assertIsNotNone(answer, "closed without a 408")
            self.assertError(answer, 408, "timeout")
            self.assertTrue(0.7 <= waited <= 2.2, f"408 after {waited:.1f}s with request_timeout 1s, idle 4s")


if __name__ == "__main__":
    unittest.main()
