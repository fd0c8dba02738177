"""What the Python tests share: the CLI's contract for a refused command
(README, "Tests": one `zoobench: error:` line naming the culprit, the exit
code of its class). Each test folder imports it with

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import zbtest
"""


class CliAssertions:
    """A mixin for unittest.TestCase; `r` is a finished subprocess.run(text=True)."""

    def assertOneError(self, r, code, *needles):
        """Exit `code` and exactly one `zoobench: error:` line, holding every needle;
        warnings and progress lines may come before it. Returns the line."""
        self.assertEqual(r.returncode, code, r.stderr)
        errors = [line for line in r.stderr.splitlines() if line.startswith("zoobench: error: ")]
        self.assertEqual(len(errors), 1, r.stderr)
        for n in needles:
            self.assertIn(n, errors[0])
        return errors[0]

    def assertOnlyError(self, r, code, *needles):
        """As assertOneError, and nothing else on stderr."""
        line = self.assertOneError(r, code, *needles)
        self.assertEqual([l for l in r.stderr.splitlines() if l.strip()], [line], r.stderr)
        return line
