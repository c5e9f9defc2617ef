"""scripts/layers.py: the real tree keeps the layering rule; a tree that
breaks it (an upward include, an upward call without an include, a folder
with no layer) is refused with the reason."""
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "layers.py")


def run(src):
    p = subprocess.run([sys.executable, SCRIPT, "--src", src], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def tree(files):
    d = tempfile.mkdtemp()
    for path, text in files.items():
        full = os.path.join(d, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
    return d


class LayersTest(unittest.TestCase):
    def test_real_tree(self):
        rc, out = run(os.path.join(ROOT, "src"))
        self.assertEqual(rc, 0, out)
        self.assertIn("all downward", out)
        self.assertNotIn("FORBIDDEN", out)

    def test_upward_include(self):
        d = tree({"core/a.c": '#include "api/internal.h"\nint core_a(void) { return 0; }\n',
                  "api/internal.h": "int api_x(void);\n",
                  "api/b.c": "int api_x(void) { return 1; }\n"})
        rc, out = run(d)
        self.assertEqual(rc, 1, out)
        self.assertIn("FORBIDDEN: %s/core/a.c includes api/" % d, out)

    def test_upward_call_without_include(self):
        d = tree({"policy/p.c": "int cache_lookup(void);\nint policy_go(void) { return cache_lookup(); }\n",
                  "cache/c.c": "int cache_lookup(void)\n{\n    return 2;\n}\n"})
        rc, out = run(d)
        self.assertEqual(rc, 1, out)
        self.assertIn("calls cache_lookup() (cache/)", out)  # same layer: stages never name each other

    def test_folder_without_layer(self):
        d = tree({"newthing/x.c": "int newthing_x(void) { return 0; }\n"})
        rc, out = run(d)
        self.assertEqual(rc, 1, out)
        self.assertIn("src/newthing/ has no layer", out)

    def test_calls_in_comments_and_strings_do_not_count(self):
        d = tree({"core/a.c": '/* api_x() */\nconst char *core_s = "api_x()";\n',
                  "api/b.c": "int api_x(void) { return 1; }\n"})
        rc, out = run(d)
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    unittest.main()
