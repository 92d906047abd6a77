/**
 * dkimpy (Debian's python3-dkim) as an independent judge of our DKIM
 * signatures and ARC sets: the message goes to /usr/bin/python3 on stdin and
 * its DNS answers come from a table we pass (name -> TXT record), so no DNS
 * server is involved. Returns one result per DKIM-Signature (dkimpy verifies
 * them one index at a time) and the ARC chain validation (cv).
 */
import { execFile } from 'node:child_process';

export const DKIMPY_PYTHON = '/usr/bin/python3';

const SCRIPT = `
import sys, json, dkim
records = json.loads(sys.argv[1])
def dnsfunc(name, timeout=5):
    n = name.decode() if isinstance(name, bytes) else name
    r = records.get(n.rstrip('.').lower())
    return r.encode() if r else None
msg = sys.stdin.buffer.read()
out = {"dkim": [], "arc": None}
d = dkim.DKIM(msg)
count = sum(1 for l in msg.split(b"\\r\\n\\r\\n")[0].split(b"\\r\\n") if l.lower().startswith(b"dkim-signature:"))
for i in range(count):
    try:
        ok = dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc)
        out["dkim"].append({"ok": bool(ok), "error": None})
    except Exception as e:
        out["dkim"].append({"ok": False, "error": str(e)})
try:
    cv, results, comment = dkim.arc_verify(msg, dnsfunc=dnsfunc)
    out["arc"] = {"cv": cv.decode() if isinstance(cv, bytes) else str(cv), "comment": str(comment)}
except Exception as e:
    out["arc"] = {"cv": "error", "comment": str(e)}
print(json.dumps(out))
`;

export interface DkimpyVerdict {
  dkim: Array<{ ok: boolean; error: string | null }>;
  arc: { cv: string; comment: string };
}

/** Verify every DKIM-Signature and the ARC chain of `message` with dkimpy. */
export function dkimpyVerify(message: Uint8Array, records: Record<string, string>): Promise<DkimpyVerdict> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      DKIMPY_PYTHON,
      ['-c', SCRIPT, JSON.stringify(records)],
      { maxBuffer: 10 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`dkimpy failed: ${stderr || err.message}`));
        resolve(JSON.parse(stdout) as DkimpyVerdict);
      },
    );
    child.stdin?.end(Buffer.from(message));
  });
}
