#!/usr/bin/env python3
"""Side by side with Cloud Custodian (BENCHMARKS.md, section 6).

Runs the same three containments as one-shot commands against one moto server, with Cloud
Custodian (`custodian run`) and with hanko (`hanko drill`), on fresh resources every round:

  key      deactivate one access key of a user that has two
  ec2      isolate one instance that has two network interfaces
  s3       block public access on one bucket

It times each command from process start to exit, then reads the end state back from moto
(which keys are Inactive, the groups of every interface, the bucket's four flags) and prints a
Markdown fragment on stdout. Progress goes to stderr. Nothing here talks to real AWS: every
client and both tools get AWS_ENDPOINT_URL pointing at the moto server given.

Usage: side_by_side.py --endpoint http://127.0.0.1:PORT --hanko target/release/hanko
                       --custodian .../bin/custodian --fixtures tests/fixtures/guardduty/api
                       --workdir DIR [--rounds 10]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3

ACCOUNT = "123456789012"
REGION = "us-east-1"
C7N_GROUP = "c7n-isolation"
HANKO_GROUP = "hanko-quarantine"  # hanko's default quarantine group name (src/plan.rs)
COMMAND_TIMEOUT = 180  # seconds, per one-shot command


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        # Both tools and every client see moto and nothing else: no profile, no real credentials.
        for k in list(self.env):
            if k.startswith("AWS_"):
                del self.env[k]
        self.env.update(
            AWS_ENDPOINT_URL=args.endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
            RUST_LOG="warn",
        )
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        mk = lambda svc: session.client(svc, endpoint_url=args.endpoint)  # noqa: E731
        self.iam, self.ec2, self.s3 = mk("iam"), mk("ec2"), mk("s3")
        self.fixtures = Path(args.fixtures)
        self.runs = 0

    # ---- running the tools --------------------------------------------------------------

    def timed(self, argv, label):
        """Runs one command; returns (seconds, exit code, stdout). Fails the bench on timeout."""
        start = time.perf_counter()
        try:
            p = subprocess.run(
                argv, env=self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            sys.exit(f"{label}: no exit within {COMMAND_TIMEOUT} s: {' '.join(argv)}")
        elapsed = time.perf_counter() - start
        if p.returncode != 0:
            log(f"{label}: exit {p.returncode}\n--- stdout\n{p.stdout[-3000:]}\n--- stderr\n{p.stderr[-3000:]}")
        return elapsed, p.returncode, p.stdout

    def custodian(self, policy, label):
        """`custodian run -s OUT policy.yml` with the resource cache off (a cached listing
        would hide this round's fresh resources). Returns (seconds, exit code, matched ids)."""
        self.runs += 1
        d = self.work / f"c7n-{self.runs}"
        d.mkdir()
        path = d / "policy.yml"
        path.write_text(json.dumps({"policies": [policy]}, indent=2))  # JSON is YAML
        secs, code, _ = self.timed(
            [self.args.custodian, "run", "--cache-period", "0", "-r", REGION,
             "-s", str(d / "out"), str(path)],
            label,
        )
        res = d / "out" / policy["name"] / "resources.json"
        matched = json.loads(res.read_text()) if res.exists() else None
        return secs, code, matched, self.custodian_inner(d / "out" / policy["name"] / "custodian-run.log")

    @staticmethod
    def custodian_inner(path):
        """Custodian's own account of the policy (resource query `time:` plus each action's
        `execution_time:`), from its run log: the run without interpreter start-up."""
        if not path.exists():
            return None
        total = 0.0
        for line in path.read_text().splitlines():
            for field in line.split():
                if field.startswith("time:") or field.startswith("execution_time:"):
                    try:
                        total += float(field.split(":", 1)[1])
                    except ValueError:
                        pass
        return total

    def hanko(self, finding, label):
        """`hanko drill FINDING --db TMP --approve-as bench --json`, fresh store each time.
        Returns (seconds, exit code, the request report)."""
        self.runs += 1
        d = self.work / f"hanko-{self.runs}"
        d.mkdir()
        path = d / "finding.json"
        path.write_text(json.dumps(finding))
        secs, code, out = self.timed(
            [self.args.hanko, "drill", str(path), "--db", str(d / "db"),
             "--approve-as", "bench", "--json"],
            label,
        )
        try:
            reports = json.loads(out)
        except json.JSONDecodeError:
            reports = []
        return secs, code, (reports[0] if reports else {})

    def finding(self, fixture, mutate):
        doc = json.loads((self.fixtures / fixture).read_text())
        doc["accountId"] = ACCOUNT
        doc["region"] = REGION
        doc["id"] = uuid.uuid4().hex
        doc["arn"] = f"arn:aws:guardduty:{REGION}:{ACCOUNT}:detector/bench/finding/{doc['id']}"
        doc["service"]["archived"] = False
        doc["service"].setdefault("additionalInfo", {})["sample"] = False
        mutate(doc["resource"])
        return doc

    # ---- the world every round shares ---------------------------------------------------

    def setup_world(self):
        vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        self.app = self.ec2.create_security_group(
            GroupName="app", Description="app", VpcId=vpc)["GroupId"]
        self.ec2.authorize_security_group_ingress(
            GroupId=self.app, IpProtocol="tcp", FromPort=22, ToPort=22, CidrIp="10.0.0.0/8")
        # Custodian's isolation group: no inbound rule, default outbound rule revoked.
        self.isolation = self.ec2.create_security_group(
            GroupName=C7N_GROUP, Description="isolation", VpcId=vpc)["GroupId"]
        self.ec2.revoke_security_group_egress(
            GroupId=self.isolation,
            IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        self.image = self.ec2.describe_images()["Images"][0]["ImageId"]

    # ---- per-round resources ------------------------------------------------------------

    def make_user(self, name):
        self.iam.create_user(UserName=name)
        keys = [self.iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"] for _ in range(2)]
        return {"user": name, "target": keys[0], "other": keys[1]}

    def make_instance(self):
        enis = [
            self.ec2.create_network_interface(SubnetId=self.subnet, Groups=[self.app])
            ["NetworkInterface"]["NetworkInterfaceId"]
            for _ in range(2)
        ]
        out = self.ec2.run_instances(
            ImageId=self.image, MinCount=1, MaxCount=1,
            NetworkInterfaces=[{"NetworkInterfaceId": e, "DeviceIndex": i} for i, e in enumerate(enis)],
            BlockDeviceMappings=[
                {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8, "DeleteOnTermination": True}},
                {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 10, "DeleteOnTermination": True}},
            ],
        )
        return {"instance": out["Instances"][0]["InstanceId"], "enis": enis}

    def make_bucket(self, name):
        self.s3.create_bucket(Bucket=name)
        self.s3.put_bucket_acl(Bucket=name, ACL="public-read")
        return {"bucket": name}

    # ---- end-state reads ----------------------------------------------------------------

    def key_state(self, r):
        meta = self.iam.list_access_keys(UserName=r["user"])["AccessKeyMetadata"]
        status = {k["AccessKeyId"]: k["Status"] for k in meta}
        policies = self.iam.list_user_policies(UserName=r["user"])["PolicyNames"]
        return {
            "target": status.get(r["target"], "deleted"),
            "other": status.get(r["other"], "deleted"),
            "user_policies": sorted(policies),
        }

    def ec2_state(self, r):
        out = self.ec2.describe_network_interfaces(NetworkInterfaceIds=r["enis"])
        groups = {n["NetworkInterfaceId"]: sorted(g["GroupName"] for g in n["Groups"])
                  for n in out["NetworkInterfaces"]}
        inst = self.ec2.describe_instances(InstanceIds=[r["instance"]])["Reservations"][0]["Instances"][0]
        prot = self.ec2.describe_instance_attribute(
            InstanceId=r["instance"], Attribute="disableApiTermination")["DisableApiTermination"]["Value"]
        return {
            "eni_groups": [groups.get(e, []) for e in r["enis"]],
            "state": inst["State"]["Name"],
            "termination_protection": prot,
            "tags": sorted(t["Key"] for t in inst.get("Tags", [])),
        }

    def s3_state(self, r):
        try:
            c = self.s3.get_public_access_block(Bucket=r["bucket"])["PublicAccessBlockConfiguration"]
        except self.s3.exceptions.ClientError as e:
            if "NoSuchPublicAccessBlockConfiguration" not in str(e):
                raise
            c = {}
        keys = ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"]
        return {"flags": {k: bool(c.get(k, False)) for k in keys}}

    # ---- clean-up, so every round sees a world of the same size --------------------------

    def drop_user(self, r):
        for k in self.iam.list_access_keys(UserName=r["user"])["AccessKeyMetadata"]:
            self.iam.delete_access_key(UserName=r["user"], AccessKeyId=k["AccessKeyId"])
        for p in self.iam.list_user_policies(UserName=r["user"])["PolicyNames"]:
            self.iam.delete_user_policy(UserName=r["user"], PolicyName=p)
        self.iam.delete_user(UserName=r["user"])

    def drop_instance(self, r):
        self.ec2.modify_instance_attribute(
            InstanceId=r["instance"], DisableApiTermination={"Value": False})
        self.ec2.terminate_instances(InstanceIds=[r["instance"]])

    def drop_bucket(self, r):
        self.s3.delete_bucket(Bucket=r["bucket"])


# ---- the three containments ----------------------------------------------------------------

def key_policy(name, r, matched):
    action = {"type": "remove-keys", "disable": True}
    if matched:
        action["matched"] = True
    return {
        "name": name,
        "resource": "iam-user",
        "filters": [
            {"UserName": r["user"]},
            {"type": "access-key", "key": "AccessKeyId", "value": r["target"]},
        ],
        "actions": [action],
    }


def ec2_policy(r, isolation):
    return {
        "name": "bench-ec2",
        "resource": "ec2",
        "filters": [{"InstanceId": r["instance"]}],
        "actions": [{"type": "modify-security-groups", "isolation-group": isolation, "remove": "all"}],
    }


def s3_policy(r):
    return {
        "name": "bench-s3",
        "resource": "s3",
        "filters": [{"Name": r["bucket"]}],
        "actions": [{
            "type": "set-public-block",
            "BlockPublicAcls": True, "IgnorePublicAcls": True,
            "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
        }],
    }


def run_round(b, n, measured):
    """One round: fresh resources for every tool, each command once, end state read back.
    Returns {scenario: {tool: {"secs", "code", "state", ...}}}."""
    tag = f"{n}-{uuid.uuid4().hex[:6]}"
    res = {}

    # Key: Custodian as the issue words it, Custodian with `matched: true`, hanko.
    users = {
        "c7n": b.make_user(f"c7n-{tag}"),
        "c7n_matched": b.make_user(f"c7nm-{tag}"),
        "hanko": b.make_user(f"hanko-{tag}"),
    }
    inst = {"c7n": b.make_instance(), "hanko": b.make_instance()}
    buckets = {"c7n": b.make_bucket(f"c7n-{tag}"), "hanko": b.make_bucket(f"hanko-{tag}")}

    def key_finding(r):
        def m(res_):
            res_["accessKeyDetails"].update(
                accessKeyId=r["target"], userName=r["user"], userType="IAMUser",
                principalId="AIDA" + r["user"].upper().replace("-", "")[:16])
        return b.finding("UnauthorizedAccess_IAMUser_TorIPCaller.json", m)

    def ec2_finding(r):
        def m(res_):
            d = res_["instanceDetails"]
            d["instanceId"] = r["instance"]
            template = d["networkInterfaces"][0]
            d["networkInterfaces"] = [dict(template, networkInterfaceId=e, subnetId=b.subnet)
                                      for e in r["enis"]]
        return b.finding("Backdoor_EC2_C_CActivity.B.json", m)

    def s3_finding(r):
        def m(res_):
            d = res_["s3BucketDetails"][0]
            d["name"] = r["bucket"]
            d["arn"] = f"arn:aws:s3:::{r['bucket']}"
        return b.finding("Policy_S3_BucketAnonymousAccessGranted.json", m)

    c7n_jobs = {
        "key": [("c7n", lambda: key_policy("bench-key", users["c7n"], False)),
                ("c7n_matched", lambda: key_policy("bench-key-matched", users["c7n_matched"], True))],
        "ec2": [("c7n", lambda: ec2_policy(inst["c7n"], b.isolation))],
        "s3": [("c7n", lambda: s3_policy(buckets["c7n"]))],
    }
    hanko_jobs = {
        "key": lambda: key_finding(users["hanko"]),
        "ec2": lambda: ec2_finding(inst["hanko"]),
        "s3": lambda: s3_finding(buckets["hanko"]),
    }
    targets = {"key": users, "ec2": inst, "s3": buckets}
    state_of = {"key": b.key_state, "ec2": b.ec2_state, "s3": b.s3_state}

    for scenario in ("key", "ec2", "s3"):
        out = {}
        # Alternate who goes first, so warm caches in moto favour neither tool.
        order = ["c7n", "hanko"] if n % 2 == 0 else ["hanko", "c7n"]
        for tool in order:
            if tool == "c7n":
                for name, policy in c7n_jobs[scenario]:
                    secs, code, matched, inner = b.custodian(policy(), f"round {n} {scenario} {name}")
                    out[name] = {"secs": secs, "code": code, "inner": inner,
                                 "matched": None if matched is None else len(matched)}
            else:
                secs, code, report = b.hanko(hanko_jobs[scenario](), f"round {n} {scenario} hanko")
                out["hanko"] = {
                    "secs": secs, "code": code, "request_state": report.get("state"),
                    "steps": [(s.get("action"), s.get("outcome")) for s in report.get("steps", [])],
                }
        for name in out:
            out[name]["state"] = state_of[scenario](targets[scenario][name])
        res[scenario] = out
        log(f"round {n}{'' if measured else ' (warm-up)'} {scenario}: " +
            ", ".join(f"{k} {v['secs']*1000:.0f} ms" for k, v in out.items()))

    # Start-up alone: each tool doing nothing but print its version.
    res["startup"] = {
        "c7n": {"secs": b.timed([b.args.custodian, "version"], "custodian version")[0]},
        "hanko": {"secs": b.timed([b.args.hanko, "--version"], "hanko --version")[0]},
    }

    for r in users.values():
        b.drop_user(r)
    for r in inst.values():
        b.drop_instance(r)
    for r in buckets.values():
        b.drop_bucket(r)
    return res


# ---- Markdown ------------------------------------------------------------------------------

def stats(xs):
    xs = sorted(x * 1000 for x in xs)
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) >= 2 else [xs[0]] * 3
    return {"median": statistics.median(xs), "min": xs[0], "max": xs[-1], "q1": q[0], "q3": q[2]}


def fmt(s):
    return f"{s['median']:.0f} ms ({s['min']:.0f}–{s['max']:.0f}; IQR {s['q1']:.0f}–{s['q3']:.0f})"


def ratio(h, c):
    r = h["median"] / c["median"]
    return f"{r:.3f}" if r < 0.1 else f"{r:.2f}"


def count(rounds, scenario, tool, pred):
    return sum(1 for r in rounds if pred(r[scenario][tool])), len(rounds)


def markdown(b, rounds, versions):
    n = len(rounds)
    t = lambda sc, tool: stats([r[sc][tool]["secs"] for r in rounds])  # noqa: E731
    rows = [
        ("Deactivate one access key (user with two keys)", "key", "c7n",
         "`iam-user`, `access-key` filter on the key id, `remove-keys` `disable: true`"),
        ("… same, Custodian with `matched: true`", "key", "c7n_matched",
         "as above plus `matched: true`"),
        ("Isolate one instance (two network interfaces)", "ec2", "c7n",
         "`ec2`, `InstanceId` filter, `modify-security-groups` `isolation-group` + `remove: all`"),
        ("Block public access on one bucket", "s3", "c7n",
         "`s3`, `Name` filter, `set-public-block` with the four flags true"),
    ]
    L = []
    L.append("## 6. Side by side with Cloud Custodian\n")
    L.append(
        f"The same containment as a one-shot command, against the same moto server, {n} measured "
        f"rounds (after one unmeasured warm-up round), fresh resources for each tool every round. "
        f"Time is the wall time of the command from process start to exit (`custodian run "
        f"--cache-period 0 -r us-east-1 -s OUT policy.yml` versus `hanko drill FINDING --db TMP "
        f"--approve-as bench --json`, fresh store each run). Median (min–max; interquartile range). "
        f"Within a round both tools see the same world (both tools' resources exist during both "
        f"runs); the order alternates between rounds; each round's resources are deleted after it "
        f"(terminated instances stay listed by moto). hanko's findings are the published GuardDuty "
        f"samples (`UnauthorizedAccess:IAMUser/TorIPCaller`, `Backdoor:EC2/C&CActivity.B`, "
        f"`Policy:S3/BucketAnonymousAccessGranted`) with account 123456789012, region us-east-1, "
        f"the round's key/user, instance and interfaces, or bucket filled in, not archived and not "
        f"marked as samples. {versions}\n")
    L.append("| containment | Cloud Custodian | hanko `drill` | hanko / c7n (medians) |")
    L.append("|---|---|---|---|")
    for title, sc, tool, _ in rows:
        c, h = t(sc, tool), t(sc, "hanko")
        L.append(f"| {title} | {fmt(c)} | {fmt(h)} | {ratio(h, c)} |")
    c, h = t("startup", "c7n"), t("startup", "hanko")
    L.append(f"| *start-up only* (`custodian version` / `hanko --version`) | {fmt(c)} | {fmt(h)} | {ratio(h, c)} |")
    L.append("")
    inner = []
    for title, sc, tool, _ in rows:
        xs = [r[sc][tool].get("inner") for r in rounds]
        if all(x is not None for x in xs):
            inner.append(f"{title.split(' (')[0].lstrip('… ')}: {statistics.median(xs) * 1000:.0f} ms")
    L.append("Custodian's own account of the policy run (resource query `time` plus action "
             "`execution_time` from its `custodian-run.log`, i.e. without interpreter start-up and "
             "policy loading), medians: " + "; ".join(inner) + ". hanko reports no such split: its "
             "figure is the whole process.\n")
    L.append("What each Custodian policy was: " + "; ".join(f"{title.split(' (')[0].lstrip('… ')}: {d}" for title, _, _, d in rows) + ".")
    L.append("Both tools' runs include the interpreter or process start-up; Custodian's includes "
             "loading its resource registry and policy validation, hanko's opening a sled store.\n")

    # What hanko did, from its own report (first measured round; same plan every round).
    first = rounds[0]
    L.append("### What each tool did (hanko's steps from its `drill --json` report)\n")
    for sc, title in (("key", "key"), ("ec2", "instance"), ("s3", "bucket")):
        steps = first[sc]["hanko"]["steps"]
        L.append(f"- {title}: hanko ran {len(steps)} step(s): " +
                 ", ".join(f"`{a}` ({o})" for a, o in steps) + ".")
    L.append("")

    # End state.
    L.append("### End state, read back from moto after every run\n")
    L.append("| check | Cloud Custodian | hanko |")
    L.append("|---|---|---|")

    def cell(sc, tool, pred):
        k, m = count(rounds, sc, tool, pred)
        return f"{k}/{m}"

    def exit_ok(sc, tool):
        return cell(sc, tool, lambda x: x["code"] == 0)

    L.append(f"| key: exit 0 | {exit_ok('key', 'c7n')} (with `matched`: {exit_ok('key', 'c7n_matched')}) | {exit_ok('key', 'hanko')} |")
    L.append(f"| key: the finding's key Inactive | {cell('key', 'c7n', lambda x: x['state']['target'] == 'Inactive')} "
             f"(with `matched`: {cell('key', 'c7n_matched', lambda x: x['state']['target'] == 'Inactive')}) "
             f"| {cell('key', 'hanko', lambda x: x['state']['target'] == 'Inactive')} |")
    L.append(f"| key: the user's **other** key still Active | {cell('key', 'c7n', lambda x: x['state']['other'] == 'Active')} "
             f"(with `matched`: {cell('key', 'c7n_matched', lambda x: x['state']['other'] == 'Active')}) "
             f"| {cell('key', 'hanko', lambda x: x['state']['other'] == 'Active')} |")
    pol = lambda x: bool(x["state"]["user_policies"])  # noqa: E731
    hp = sorted({p for r in rounds for p in r["key"]["hanko"]["state"]["user_policies"]})
    L.append(f"| key: inline policy added to the user (session revocation) | {cell('key', 'c7n', pol)} "
             f"(with `matched`: {cell('key', 'c7n_matched', pol)}) | {cell('key', 'hanko', pol)} "
             f"({', '.join(f'`{p}`' for p in hp) or 'none'}) |")

    L.append(f"| instance: exit 0 | {exit_ok('ec2', 'c7n')} | {exit_ok('ec2', 'hanko')} |")
    def only(group, primary=False):
        def pred(x):
            enis = x["state"]["eni_groups"][:1] if primary else x["state"]["eni_groups"]
            return all(g == [group] for g in enis)
        return pred
    iso_c, one_group = only(C7N_GROUP), only(HANKO_GROUP)
    L.append(f"| instance: primary interface in the isolation group only (c7n: `{C7N_GROUP}`, "
             f"hanko: `{HANKO_GROUP}`) | {cell('ec2', 'c7n', only(C7N_GROUP, True))} "
             f"| {cell('ec2', 'hanko', only(HANKO_GROUP, True))} |")
    L.append(f"| instance: **all** interfaces in the isolation group only | {cell('ec2', 'c7n', iso_c)} "
             f"| {cell('ec2', 'hanko', one_group)} |")
    seen = lambda t: ", ".join(sorted({"`" + "+".join(g) + "`" for r in rounds  # noqa: E731
                                       for g in r["ec2"][t]["state"]["eni_groups"]}))
    L.append(f"| instance: groups seen on the interfaces (all rounds) | {seen('c7n')} | {seen('hanko')} |")
    L.append(f"| instance: termination protection on | {cell('ec2', 'c7n', lambda x: x['state']['termination_protection'])} "
             f"| {cell('ec2', 'hanko', lambda x: x['state']['termination_protection'])} |")
    L.append(f"| instance: still running | {cell('ec2', 'c7n', lambda x: x['state']['state'] == 'running')} "
             f"| {cell('ec2', 'hanko', lambda x: x['state']['state'] == 'running')} |")
    tags = sorted({k for r in rounds for k in r["ec2"]["hanko"]["state"]["tags"]})
    L.append(f"| instance: tagged | {cell('ec2', 'c7n', lambda x: bool(x['state']['tags']))} "
             f"| {cell('ec2', 'hanko', lambda x: bool(x['state']['tags']))} ({', '.join(f'`{k}`' for k in tags) or 'none'}) |")

    four = lambda x: all(x["state"]["flags"].values())  # noqa: E731
    L.append(f"| bucket: exit 0 | {exit_ok('s3', 'c7n')} | {exit_ok('s3', 'hanko')} |")
    L.append(f"| bucket: all four public-access-block flags true | {cell('s3', 'c7n', four)} | {cell('s3', 'hanko', four)} |")
    L.append("")

    # Differences, stated from what was observed.
    L.append("### Differences observed\n")
    diffs = []
    k, m = count(rounds, "key", "c7n", lambda x: x["state"]["other"] == "Inactive")
    if k:
        diffs.append(
            f"Custodian's `remove-keys` with `disable: true` deactivated the user's **other** key "
            f"too in {k}/{m} rounds: without `matched: true` the action applies to every key of a "
            f"user the `access-key` filter matched, not to the matching key. hanko deactivated "
            f"only the finding's key.")
    k2, _ = count(rounds, "key", "c7n_matched", lambda x: x["state"]["other"] == "Inactive")
    diffs.append(
        f"With `matched: true` Custodian touched the other key in {k2}/{m} rounds.")
    k, m = count(rounds, "key", "hanko", pol)
    if k:
        diffs.append(
            f"hanko's key plan has an extra step: it also revokes the user's older sessions "
            f"(inline deny policy conditioned on `aws:TokenIssueTime`), seen in {k}/{m} rounds. "
            f"Custodian's policy does not: temporary credentials minted from the key stay valid. "
            f"hanko's timing includes that extra call.")
    kc, m = count(rounds, "ec2", "c7n", iso_c)
    kh, _ = count(rounds, "ec2", "hanko", one_group)
    diffs.append(
        f"Instance: Custodian left all interfaces in the isolation group only in {kc}/{m} rounds, "
        f"hanko in {kh}/{m}: both isolated every interface, not only the primary one. hanko puts "
        f"them in its own `hanko-quarantine` group (created in the warm-up round; its plan moves "
        f"each interface through an all-traffic transition group first, so tracked connections "
        f"are dropped), Custodian in the pre-created group named in the policy. hanko also snapshots the "
        f"volumes, turns on termination protection, sets the shutdown behaviour to stop, keeps "
        f"the volumes on termination and tags the instance (see its steps above); Custodian's "
        f"policy only changes the groups. hanko's timing includes all of that.")
    kc, m = count(rounds, "s3", "c7n", four)
    kh, _ = count(rounds, "s3", "hanko", four)
    diffs.append(f"Bucket: all four flags set by Custodian in {kc}/{m} rounds, by hanko in {kh}/{m}.")
    bad = [(i, sc, tool) for i, r in enumerate(rounds) for sc in r for tool in r[sc] if r[sc][tool].get("code", 0) != 0]
    if bad:
        diffs.append("Non-zero exits: " + ", ".join(f"round {i} {sc} {tool}" for i, sc, tool in bad) + ".")
    L.extend(f"- {d}" for d in diffs)
    L.append("")
    example = {"user": "USER", "target": "AKIA...TARGET", "instance": "i-...", "bucket": "BUCKET"}
    L.append("<details><summary>The Custodian policies (ids filled in per round)</summary>\n")
    L.append("```json")
    L.append(json.dumps({"policies": [key_policy("bench-key", example, False),
                                      key_policy("bench-key-matched", example, True),
                                      ec2_policy(example, "sg-... (c7n-isolation)"),
                                      s3_policy(example)]}, indent=2))
    L.append("```\n")
    L.append("</details>\n")
    L.append("<details><summary>Per-round wall times (ms)</summary>\n")
    L.append("| round | key c7n | key c7n matched | key hanko | ec2 c7n | ec2 hanko | s3 c7n | s3 hanko | start-up c7n | start-up hanko |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(rounds):
        cols = [r["key"]["c7n"], r["key"]["c7n_matched"], r["key"]["hanko"], r["ec2"]["c7n"],
                r["ec2"]["hanko"], r["s3"]["c7n"], r["s3"]["hanko"], r["startup"]["c7n"],
                r["startup"]["hanko"]]
        L.append(f"| {i} | " + " | ".join(f"{c['secs']*1000:.0f}" for c in cols) + " |")
    L.append("\n</details>\n")
    return "\n".join(L)


def summary_rows(rounds):
    """Rows of the summary table at the top of BENCHMARKS.md."""
    anchor = "[§6](#6-side-by-side-with-cloud-custodian)"
    rows = []
    for title, sc, tool in (("deactivate one key", "key", "c7n"),
                            ("isolate one two-interface instance", "ec2", "c7n"),
                            ("block public access on one bucket", "s3", "c7n")):
        c = stats([r[sc][tool]["secs"] for r in rounds])
        h = stats([r[sc]["hanko"]["secs"] for r in rounds])
        rows.append(f"| 6. {title}: `hanko drill` vs `custodian run` (median over {len(rounds)}) "
                    f"| {h['median']:.0f} ms vs {c['median']:.0f} ms (ratio {ratio(h, c)}) | {anchor} |")
    return "\n".join(rows) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--hanko", required=True)
    ap.add_argument("--custodian", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--versions", default="")
    ap.add_argument("--raw", help="write every round's measurements here as JSON")
    ap.add_argument("--summary", help="write the rows of BENCHMARKS.md's summary table here")
    args = ap.parse_args()
    if args.rounds < 1:
        sys.exit("--rounds must be at least 1")
    b = Bench(args)
    b.setup_world()
    run_round(b, -1, measured=False)
    rounds = [run_round(b, n, measured=True) for n in range(args.rounds)]
    if args.raw:
        Path(args.raw).write_text(json.dumps(rounds, indent=1))
    print(markdown(b, rounds, args.versions))
    if args.summary:
        Path(args.summary).write_text(summary_rows(rounds))


if __name__ == "__main__":
    main()
