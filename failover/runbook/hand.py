"""What an automated step does, as commands a person can type when the daemon is unavailable.

Each action maps to the ``kubectl``/``velero``/``aws``/``curl`` commands doing the same by hand, with
the step's parameters as placeholders (``<TO>``, ``<BACKUP>``). They go into the Notfallhandbuch.
"""

from __future__ import annotations

import re

from failover.config import models
from failover.playbook.model import Step

_TEMPLATE = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")


def placeholder(value: object) -> str:
    """A step parameter with its templates shown as placeholders: ``{{ params.to }}`` → ``<TO>``."""
    def name(m: re.Match[str]) -> str:
        parts = m.group(1).split(".")
        return f"<{parts[-1].upper().replace('-', '_')}>"
    return _TEMPLATE.sub(name, str(value))

_COMMANDS: dict[str, str] = {
    "fence": "kubectl --context <SITE> -n opendesk scale deployment,statefulset --all --replicas=0\n"
             "velero --kubecontext <SITE> schedule pause --all   # if the site answers at all",
    "select-backup": "velero --kubecontext <SITE> backup get   # the newest Completed backup, younger than "
                     "the RPO ({rpo:g} s)",
    "velero-restore": "velero --kubecontext <SITE> restore create --from-backup <BACKUP> \\\n"
                      "  --include-namespaces opendesk --existing-resource-policy update --wait \\\n"
                      "  --or-selector '<labels of the group's components, see section 5>'",
    "scale": "kubectl --context <SITE> -n opendesk scale deployment <APP> --replicas=<N>   # each 'scale' app",
    "dns-switch": "# every workplace hostname's A record -> the ingress address of <TO>, TTL {ttl} s,\n"
                  "# in the DNS provider's console or API ({dns}); then check:\n"
                  "dig +short files.{zone} @<nameserver>",
    "verify": "curl -fsS -o /dev/null -w '%{{http_code}}\\n' https://<hostname>.{zone}/<probe path>   # each app",
    "mark-active": "# write into the log (section 6): <TO> is active since <time>; <SOURCE> stays fenced",
    "enable-backups": "kubectl --context <SITE> -n velero patch backupstoragelocation default --type merge "
                      "-p '{{\"spec\":{{\"accessMode\":\"ReadWrite\"}}}}'\n"
                      "velero --kubecontext <SITE> schedule create opendesk --schedule '<SCHEDULE>' "
                      "--include-namespaces opendesk",
    "notify": "# inform the Krisenstab and the institutions' service desks (section 1)",
    "quiesce": "kubectl --context <SITE> -n opendesk scale statefulset,deployment -l "
               "'app.kubernetes.io/instance in (<stateful apps>)' --replicas=0",
    "final-backup": "velero --kubecontext <SITE> backup create final-$(date +%Y%m%d%H%M) "
                    "--include-namespaces opendesk --wait",
    "replicate-backup": "aws s3 sync s3://<SOURCE bucket>/backups/<BACKUP>/ s3://<TARGET bucket>/backups/<BACKUP>/ "
                        "--exclude velero-backup.json\n"
                        "aws s3 cp s3://<SOURCE bucket>/backups/<BACKUP>/velero-backup.json "
                        "s3://<TARGET bucket>/backups/<BACKUP>/   # metadata last",
    "warm-restore": "velero --kubecontext <SITE> restore create --from-backup <BACKUP> "
                    "--include-namespaces opendesk --existing-resource-policy update --wait",
    "mark-time": "# write the time into the log (section 6)",
    "point-buckets": "kubectl --context <SITE> -n opendesk set env deployment/<APP> S3_ENDPOINT=<SITE's S3 endpoint> "
                     "S3_BUCKET=<SITE's copy of the app bucket>   # each app that keeps files in a bucket",
    "verify-volumes": "velero --kubecontext <SITE> backup describe <BACKUP> --details   # every pod volume backup "
                      "Completed; its snapshot readable in <SITE>'s bucket",
    "pg-recover": "# on <SITE>'s database host, as postgres, with <SITE>'s repository (its pgwal bucket):\n"
                  "pgbackrest --stanza=opendesk restore --type=default --archive-mode=off   # empty data dir\n"
                  "pg_ctl -D <data dir> start   # replays the archived WAL to its end, then promotes",
    "pg-final-archive": "psql -h <SITE's database> -U postgres -c 'SELECT pg_walfile_name(pg_switch_wal())'\n"
                        "# wait until pg_stat_archiver.last_archived_wal has reached it, then: pg_ctl stop -m fast",
    "reprotect": "kubectl --context <SITE> -n opendesk scale deployment,statefulset --all --replicas=0\n"
                 "velero --kubecontext <SITE> schedule pause --all\n"
                 "kubectl --context <SITE> -n velero patch backupstoragelocation default --type merge "
                 "-p '{{\"spec\":{{\"accessMode\":\"ReadOnly\"}}}}'",
}


def command(step: Step, cfg: models.Config) -> str:
    """The by-hand commands of ``step``, with its site parameters named."""
    template = _COMMANDS.get(step.uses, f"# no by-hand form known for action {step.uses}")
    text = template.format(rpo=cfg.policy.rpo, ttl=cfg.dns.ttl, dns=cfg.dns.provider,
                           zone=cfg.workplace.zone.rstrip("."))
    for key in ("site", "to", "source", "target"):
        value = step.with_.get(key)
        if isinstance(value, str):
            name = "SITE" if key == "site" else key.upper()
            text = text.replace(f"<{name}>", placeholder(value))
    return text
