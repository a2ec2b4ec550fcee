#!/usr/bin/env python3
"""Checks the fake Last.fm server (tests/fixtures/lastfm/fake_lastfm.py) itself: every rule it
promises, the request record and the control endpoints, so the C tests that rely on it can be
trusted."""

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
from urllib.parse import urlencode

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("STINT_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
SERVER = os.path.join(SRC, "tests", "fixtures", "lastfm", "fake_lastfm.py")


class FakeLastfmTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.log = tempfile.NamedTemporaryFile(prefix="fake_lastfm_", suffix=".jsonl", delete=False)
        cls.proc = subprocess.Popen(
            [sys.executable, SERVER, "--port", "0", "--exit-on-stdin-eof", "--bad-key", "BAD",
             "--suspended-key", "SUSP", "--log", cls.log.name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = cls.proc.stdout.readline()
        assert line.startswith("PORT "), line
        cls.port = int(line.split()[1])

    @classmethod
    def tearDownClass(cls):
        cls.proc.stdin.close()
        cls.proc.wait(timeout=10)
        os.unlink(cls.log.name)

    def get(self, path, ua="stint-test/1"):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.putrequest("GET", path, skip_accept_encoding=True)
        if ua:
            c.putheader("User-Agent", ua)
        c.endheaders()
        r = c.getresponse()
        body = r.read().decode("utf-8")
        c.close()
        return r.status, body

    def info(self, artist, track, key="KEY", ua="stint-test/1", fmt="json"):
        q = urlencode({"method": "track.getInfo", "api_key": key, "artist": artist, "track": track,
                       "format": fmt, "autocorrect": "1"})
        status, body = self.get("/2.0/?" + q, ua)
        return status, (json.loads(body) if body.startswith("{") else body)

    def setUp(self):
        self.get("/_reset")

    def test_found_with_string_numbers_and_tag_array(self):
        status, j = self.info("radiohead", "KARMA POLICE")
        self.assertEqual(status, 200)
        t = j["track"]
        self.assertEqual(t["name"], "Karma Police")
        self.assertEqual(t["duration"], "264000")
        self.assertIsInstance(t["listeners"], str)
        self.assertIsInstance(t["toptags"]["tag"], list)
        self.assertEqual(len(t["toptags"]["tag"]), 7)

    def test_quirks(self):
        self.assertIsInstance(self.info("Björk", "Jóga")[1]["track"]["toptags"]["tag"], dict)
        self.assertEqual(self.info("Boards of Canada", "Roygbiv")[1]["track"]["duration"], "0")
        t = self.info("Aphex Twin", "Avril 14th")[1]["track"]
        self.assertNotIn("toptags", t)
        self.assertEqual(t["duration"], "125000")
        self.assertIsInstance(self.info("Autechre", "Gantz Graf")[1]["track"]["toptags"], str)
        self.assertNotIn("duration", self.info("Portishead", "Roads")[1]["track"])
        self.assertEqual(self.info("Odd Band", "Not Json")[1], "<html>Service Unavailable</html>")
        self.assertNotIn("track", self.info("Odd Band", "No Track")[1])
        self.assertIn("KEY", self.info("Odd Band", "Echo Key")[1]["message"])
        self.assertEqual(self.info("Rate Band", "Song 12")[1]["track"]["duration"], "112000")

    def test_errors(self):
        self.assertEqual(self.info("Nobody", "Nothing"), (200, {"error": 6, "message": "Track not found", "links": []}))
        self.assertEqual(self.info("Radiohead", "Karma Police", key="BAD")[1]["error"], 10)
        self.assertEqual(self.info("Radiohead", "Karma Police", key="")[1]["error"], 10)
        self.assertEqual(self.info("Radiohead", "Karma Police", key="SUSP")[1]["error"], 26)
        self.assertEqual(self.info("Radiohead", "Karma Police", ua=None)[0], 400)
        self.assertEqual(self.get("/2.0/?method=artist.getInfo&api_key=K&format=json")[1].count('"error": 3'), 1)
        self.assertEqual(self.info("Temp Band", "Always Down")[0], 500)

    def test_fail_first_then_ok_and_reset(self):
        seq = [self.info("Temp Band", "Twenty Nine")[1].get("error") for _ in range(3)]
        self.assertEqual(seq, [29, 29, None])
        seq = [self.info("Temp Band", "Five Oh Three")[0] for _ in range(3)]
        self.assertEqual(seq, [503, 503, 200])
        self.get("/_reset")
        self.assertEqual(self.info("Temp Band", "Sixteen")[1].get("error"), 16)
        self.assertEqual(self.info("Temp Band", "Sixteen")[1]["track"]["duration"], "201000")

    def test_requests_recorded(self):
        self.info("Sigur Rós", "Hoppípolla", key="K1")
        self.info("AC/DC", "Rock & Roll Ain't Noise Pollution", ua=None)
        reqs = json.loads(self.get("/_requests")[1])["requests"]
        self.assertEqual([(r["artist"], r["track"], r["api_key"]) for r in reqs],
                         [("Sigur Rós", "Hoppípolla", "K1"), ("AC/DC", "Rock & Roll Ain't Noise Pollution", "KEY")])
        self.assertEqual([r["user_agent"] for r in reqs], ["stint-test/1", ""])
        self.assertEqual(reqs[0]["autocorrect"], "1")
        self.assertLessEqual(reqs[0]["t"], reqs[1]["t"])
        with open(self.log.name, encoding="utf-8") as f:
            logged = [json.loads(line) for line in f]
        self.assertEqual(logged[-1]["track"], "Rock & Roll Ain't Noise Pollution")

    def test_delay(self):
        self.assertEqual(json.loads(self.get("/_config?delay_s=0.3")[1])["delay_s"], 0.3)
        t0 = time.monotonic()
        self.info("Radiohead", "Karma Police")
        waited = time.monotonic() - t0
        self.get("/_config?delay_s=0")
        self.assertGreaterEqual(waited, 0.3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
