"""amqpgwd's flag names, read from the source, for the offline checks of
docker/ and deploy/ (docker_files_test.py, deploy_files_test.py).

The flags are defined in one place: the flag table in
server/daemon/flags.cc, or, before it, the kFlagNames list in
server/main.cc. Every flag has the environment twin AMQPGW_<NAME>.
"""
import os
import re


def daemon_flags(root):
    """The set of amqpgwd flag names (without "--")."""
    flags = set()
    table = os.path.join(root, "server/daemon/flags.cc")
    if os.path.exists(table):
        with open(table, encoding="utf-8") as f:
            text = f.read()
        flags.update(re.findall(
            r'\b(?:String|Bool|Int|Duration)Flag\(\s*"(\w+)"', text))
    with open(os.path.join(root, "server/main.cc"), encoding="utf-8") as f:
        main_cc = f.read()
    start = main_cc.find("kFlagNames")
    if start >= 0:
        block = main_cc[start:]
        flags.update(re.findall(r'"(\w+)"', block[:block.find("};")]))
    return flags


def env_flag(name):
    """"AMQPGW_BROKER_FILE" -> "broker_file"; None for other names."""
    if not name.startswith("AMQPGW_"):
        return None
    return name[len("AMQPGW_"):].lower()
