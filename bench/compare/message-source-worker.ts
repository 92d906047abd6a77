/**
 * runMessageSource (load.ts) in a worker thread: the load of the signing
 * variants must not share an event loop with the benchmark's DNS server,
 * whose answers the systems under test wait for (SPF, DMARC, DKIM keys); in
 * the main thread a busy generator turned those lookups into timeouts.
 * workerData: the run (port, sessions, messages, recipients, sender, bytes,
 * first message number); posts 'done' or throws.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runMessageSource } from './load.ts';
import { signedMessage } from './signed-mail.ts';

export interface MessageSourceJob {
  port: number;
  sessions: number;
  messages: number;
  recipients: number;
  sender: string;
  bytes: number;
  /** Number of the first message (Message-IDs never repeat over the benchmark). */
  first: number;
}

const job = workerData as MessageSourceJob;
let n = job.first;
await runMessageSource(job.port, { ...job, message: () => signedMessage(job.bytes, n++) });
parentPort!.postMessage('done');
