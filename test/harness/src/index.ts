export { type BlackHole, startBlackHole } from './black-hole.ts';
export {
  DIRECTORY_REMOTE_DOMAINS,
  directoryEntries,
  directoryForwards,
  forwardingIndex,
  sampleIndex,
} from './directory-entries.ts';
export { DKIMPY_PYTHON, type DkimpyVerdict, dkimpyVerify } from './dkimpy.ts';
export {
  type DnsQueryLog,
  type DnsRecord,
  type DnsRecordType,
  type DnsServer,
  splitTxt,
  startDnsServer,
} from './dns-server.ts';
export {
  type DnssecResolver,
  KEYMGR_BIN,
  KNOTD_BIN,
  startDnssecResolver,
  type TestZone,
  UNBOUND_BIN,
} from './dnssec-resolver.ts';
export { type QueueLagSource, waitForDrainedQueues } from './drained-queues.ts';
export {
  CLAMD_BIN,
  clamdAvailable,
  EICAR,
  type EngineProcess,
  RSPAMD_BIN,
  rspamdAvailable,
  startClamd,
  startRspamd,
} from './engines.ts';
export { type NatsNode, type NatsTestServer, startNats, startNatsCluster } from './nats.ts';
export { type OtlpReceiver, type ReceivedSpan, spansOfExport, startOtlpReceiver } from './otlp-receiver.ts';
export { freePort } from './ports.ts';
export {
  POSTFIX_BIN,
  type PostfixInstance,
  type PostfixRelayOptions,
  portOpen,
  postfixBaseMainCf,
  postfixMasterCf,
  postfixRelayMainCf,
  postfixUsable,
  startPostfixInstance,
  startPostfixRelay,
} from './postfix.ts';
export { POSTSRSD_BIN, type Postsrsd, type PostsrsdAnswer, startPostsrsd } from './postsrsd.ts';
export {
  type ServiceContextOptions,
  startServiceContext,
  type TestServiceContext,
} from './service-context.ts';
export { type LdapTestEntry, SLAPD_SUFFIX, SLAPD_USERS, type SlapdServer, startSlapd } from './slapd.ts';
export { type SluiceConfigOptions, sluiceConfigYaml, writeSluiceConfig } from './sluice-config.ts';
export {
  type SluiceProcess,
  sluiceBin,
  sluiceCommand,
  startNodeProcess,
  startSluiceCommand,
  startSluiceProcess,
} from './sluice-process.ts';
export {
  type ConversationStep,
  type SendMailOptions,
  type SendMailResult,
  sendMail,
  smtpConversation,
} from './smtp-client.ts';
export {
  type SinkFailure,
  type SinkMessage,
  type SmtpSink,
  type SmtpSinkOptions,
  startSmtpSink,
} from './smtp-sink.ts';
export { collectStage, stageAcks } from './stage-probes.ts';
export {
  type HashedMessage,
  type HashingSmtpSink,
  type StreamedMailOptions,
  type StreamedMailResult,
  sendStreamedMail,
  startHashingSmtpSink,
} from './streamed-mail.ts';
export { type Probed, type WaitUntilOptions, waitUntil } from './wait-until.ts';
