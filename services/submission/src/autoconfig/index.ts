/**
 * Client autoconfiguration for the submission service: the documents mail
 * clients fetch to set themselves up (Mozilla autoconfig, Microsoft
 * Autodiscover, Apple .mobileconfig), the RFC 6186 SRV records to publish,
 * and the small HTTP(S) endpoint that serves the documents.
 */
export { appleMobileconfig, MOBILECONFIG_CONTENT_TYPE, NoIncomingServer } from './apple-mobileconfig.ts';
export {
  type AutoconfigOptions,
  type ResolvedAutoconfig,
  resolveAutoconfig,
  type ServerEndpoint,
  type TlsMode,
} from './autoconfig-options.ts';
export {
  type AutoconfigServer,
  type AutoconfigServerOptions,
  startAutoconfigServer,
} from './autoconfig-server.ts';
export { autodiscoverJson, autodiscoverXml } from './autodiscover.ts';
export { type AutodiscoverRequest, parseAutodiscoverRequest } from './autodiscover-request.ts';
export { AddressRefused, addressInDomains, type CheckedAddress } from './mail-address.ts';
export { mozillaAutoconfigXml } from './mozilla-autoconfig.ts';
export { srvRecords } from './srv-records.ts';
