"""The registry and runner the Python integration suites share.

`test` collects a function; `run` calls each in order, prints `ok - NAME` or
`not ok - NAME` with the traceback, then the closing `N passed, M failed` line,
and returns the number that failed.
"""
import traceback


class Suite:
    def __init__(self):
        self.tests = []

    def test(self, fn):
        self.tests.append(fn)
        return fn

    def run(self):
        failed = 0
        for fn in self.tests:
            try:
                fn()
                print("ok - %s" % fn.__name__)
            except Exception:
                failed += 1
                print("not ok - %s" % fn.__name__)
                traceback.print_exc()
        print("%d passed, %d failed" % (len(self.tests) - failed, failed))
        return failed
