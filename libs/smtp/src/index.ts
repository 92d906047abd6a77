/** @sluice/smtp: SMTP vocabulary shared by the services (replies, addresses, headers, assembly). */
export * from './address.ts';
export * from './bare-newline.ts';
export * from './header-field.ts';
export * from './message-assembly.ts';
export * from './received-header.ts';
export * from './smtp-reply.ts';
