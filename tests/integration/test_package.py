"""The Debian package (issue 10, item 2), built from this build tree with CPack and installed on this
machine with dpkg (root only; CI runs as root):

- `dpkg -i` (then `apt-get -f install` for anything missing) installs the daemon, the CLI, the
  plugins, the systemd unit, sysusers/tmpfiles snippets, the example configuration as a conffile
  and the man pages; postinst creates the `fieldlink` user (in `dialout`) and its directories;
- the installed `fieldlinkd --check` accepts the installed example, and loads the installed
  plugins (not the build tree's): a configuration naming every driver is accepted;
- the installed daemon runs as `fieldlink`, keeps its outbox in /var/lib/fieldlink and writes its
  status files into /run/fieldlink (a tmpfs: no SD-card wear), where `fieldlink status` finds them;
- `dpkg -r` then `dpkg -P` leave nothing of the package behind (files, /etc/fieldlink,
  /var/lib/fieldlink).
Prints the package's size and its installed size."""
import os
import signal
import subprocess
import time
import unittest

from harness import Procs, wait_for

BUILD = os.path.abspath(os.environ.get("FIELDLINK_BUILD_DIR", "build"))


def sh(*args, check=True, **kw):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=600, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


@unittest.skipUnless(os.geteuid() == 0, "installs a package: root only")
class PackageTest(unittest.TestCase):
    def test_install_check_run_remove_purge(self):
        procs = Procs(self)
        out = sh("cpack", "-G", "DEB", cwd=BUILD).stdout
        debs = [l.split("package: ")[1].split(" generated")[0] for l in out.splitlines() if "package: " in l]
        self.assertEqual(len(debs), 1, out)
        deb = debs[0]
        if sh("dpkg", "-s", "fieldlink", check=False).returncode == 0:
            sh("dpkg", "-P", "fieldlink")
        self.addCleanup(lambda: sh("dpkg", "-P", "fieldlink", check=False))
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if sh("dpkg", "-i", deb, check=False, env=env).returncode != 0:
            sh("apt-get", "-f", "install", "-y", env=env)
        self.assertIn("install ok installed", sh("dpkg-query", "-W", "-f=${Status}", "fieldlink").stdout)
        files = [f for f in sh("dpkg", "-L", "fieldlink").stdout.splitlines() if f.strip()]
        installed_kib = int(sh("dpkg-query", "-W", "-f=${Installed-Size}", "fieldlink").stdout)
        print("package %s: %d KiB, installed %d KiB" % (os.path.basename(deb), os.path.getsize(deb) // 1024,
                                                         installed_kib))

        for f in ("/usr/bin/fieldlinkd", "/usr/bin/fieldlink", "/usr/lib/systemd/system/fieldlinkd.service",
                  "/usr/lib/sysusers.d/fieldlink.conf", "/usr/lib/tmpfiles.d/fieldlink.conf",
                  "/etc/fieldlink/fieldlink.yaml", "/usr/share/man/man8/fieldlinkd.8.gz",
                  "/usr/share/man/man1/fieldlink.1.gz"):
            self.assertIn(f, files)
        plugins = [f for f in files if f.endswith(".so") and "/fieldlink/plugins/" in f]
        self.assertEqual(sorted(os.path.basename(p) for p in plugins), ["fl_modbus.so", "fl_serial.so", "fl_sim.so"])
        self.assertIn("/etc/fieldlink/fieldlink.yaml", sh("dpkg-query", "--control-show", "fieldlink",
                                                          "conffiles").stdout)
        self.assertIn("dialout", sh("id", "-nG", "fieldlink").stdout.split())
        st = os.stat("/var/lib/fieldlink")
        self.assertEqual(st.st_uid, int(sh("id", "-u", "fieldlink").stdout))

        # The installed binaries with the installed plugins: not the build tree's (ctest points
        # FIELDLINK_PLUGIN_DIR there, and the service user may not even be able to read it).
        installed = {k: v for k, v in os.environ.items() if k != "FIELDLINK_PLUGIN_DIR"}
        p = sh("/usr/bin/fieldlinkd", "--check", "--config", "/etc/fieldlink/fieldlink.yaml", env=installed)
        self.assertIn("configuration OK", p.stdout + p.stderr)
        # Every driver from the installed plugin directory (the build tree's are not looked at).
        every = procs.write("every.yaml", """
clouds:
  c: { platform: mqtt, host: 127.0.0.1, port: 1883, topic: "t/{device}" }
buses:
  a: { driver: sim }
  b: { driver: modbus-tcp, host: 127.0.0.1 }
  c: { driver: serial-line, device: /dev/null, pattern: '(?<v>\\d+)' }
devices:
  - { name: d1, cloud: c, bus: a, points: [{ name: v, area: holding, address: 0 }] }
  - { name: d2, cloud: c, bus: b, points: [{ name: v, area: holding, address: 0 }] }
  - { name: d3, cloud: c, bus: c, points: [{ name: v, field: v }] }
""")
        p = sh("/usr/bin/fieldlinkd", "--check", "--config", every, env=installed)
        self.assertIn("configuration OK", p.stdout + p.stderr)

        # The installed daemon as its own user: its data directory is writable to it.
        status = "/run/fieldlink/status.json"
        self.assertEqual(os.stat("/run/fieldlink").st_uid, int(sh("id", "-u", "fieldlink").stdout))
        d = procs.start(["setpriv", "--reuid=fieldlink", "--regid=fieldlink", "--init-groups", "/usr/bin/fieldlinkd", "--config",
                         "/etc/fieldlink/fieldlink.yaml"], "installed.log", env=installed)
        wait_for(lambda: os.path.exists(status), timeout=15, what="status.json written by the installed daemon")
        self.assertTrue(os.path.exists("/var/lib/fieldlink/outbox.db"))
        self.assertFalse(os.path.exists("/var/lib/fieldlink/status.json"), "status files go to the tmpfs")
        p = sh("/usr/bin/fieldlink", "status", "--config", "/etc/fieldlink/fieldlink.yaml", env=installed)
        self.assertIn("demo-device", p.stdout)
        d.send_signal(signal.SIGTERM)
        self.assertEqual(d.wait(15), 0, procs.read("installed.log"))

        sh("dpkg", "-r", "fieldlink")
        self.assertFalse(os.path.exists("/usr/bin/fieldlinkd"))
        self.assertTrue(os.path.exists("/etc/fieldlink/fieldlink.yaml"), "remove keeps the conffile")
        sh("dpkg", "-P", "fieldlink")
        self.assertNotEqual(sh("dpkg", "-s", "fieldlink", check=False).returncode, 0)
        left = [f for f in files if os.path.isfile(f) or os.path.islink(f)]
        self.assertEqual(left, [], "files of the package left after purge")
        left_dirs = [f for f in files if "fieldlink" in f and os.path.isdir(f)]
        self.assertEqual(left_dirs, [])
        for path in ("/etc/fieldlink", "/var/lib/fieldlink", "/run/fieldlink"):
            self.assertFalse(os.path.exists(path), path)


if __name__ == "__main__":
    unittest.main()
