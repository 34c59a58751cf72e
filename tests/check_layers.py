"""The folders of daemon/ follow the data path, and their includes must too.

Each folder may include only the folders listed for it (itself included), so there are no
circles and the south side (bus, mapping) never includes the north side (store, north,
platforms). Top-level files (app, load, main) and cli/ may include anything. Driver plugins
include only the public ABI header.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ALLOWED = {
    "core": {"core"},
    "config": {"core", "config"},
    "mapping": {"core", "config", "mapping"},
    "bus": {"core", "config", "mapping", "bus"},
    "store": {"core", "config", "store"},
    "north": {"core", "config", "store", "north"},
    "platforms": {"core", "config", "north", "platforms"},
    "serve": {"core", "config", "mapping", "serve"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def main():
    problems = []
    daemon = os.path.join(ROOT, "daemon")
    for folder, allowed in ALLOWED.items():
        for name in sorted(os.listdir(os.path.join(daemon, folder))):
            path = os.path.join(daemon, folder, name)
            for inc in INCLUDE.findall(open(path).read()):
                target = inc.split("/")[0] if "/" in inc else folder
                if target not in allowed:
                    problems.append("daemon/%s/%s includes %s: %s may include only %s"
                                    % (folder, name, inc, folder, ", ".join(sorted(allowed))))
    for dirpath, _, files in os.walk(os.path.join(ROOT, "plugins")):
        for name in files:
            if not name.endswith((".cpp", ".hpp", ".h", ".c")):
                continue
            for inc in INCLUDE.findall(open(os.path.join(dirpath, name)).read()):
                if not inc.startswith("fieldlink/") and os.path.dirname(inc) != "":
                    problems.append("plugins/%s includes %s: plugins see only the ABI header"
                                    % (os.path.relpath(os.path.join(dirpath, name), os.path.join(ROOT, "plugins")), inc))
    for p in problems:
        print(p)
    checked = sum(len(os.listdir(os.path.join(daemon, f))) for f in ALLOWED)
    print("layers: %d files in %d folders checked, %d problem(s)" % (checked, len(ALLOWED), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
