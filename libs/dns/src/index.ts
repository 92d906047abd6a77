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
