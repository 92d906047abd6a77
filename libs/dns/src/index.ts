export {
  type AnswerCache,
  type CacheableOutcome,
  createAnswerCache,
  type LookupSource,
} from './answer-cache.ts';
export { type CachingResolverOptions, createCachingResolver, type DnsResolve } from './caching-resolver.ts';
export { type DnsServerAddress, exchange, parseResolverAddress } from './dns-exchange.ts';
export {
  type AddressAnswer,
  cnameTarget,
  createSecureDns,
  type DnsAnswer,
  type DnsRcode,
  type MxAnswer,
  type SecureDns,
  type TlsaAnswer,
  type TlsaRecord,
} from './secure-dns.ts';
