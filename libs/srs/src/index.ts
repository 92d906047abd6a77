/** @sluice/srs: the Sender Rewriting Scheme as libsrs2/postsrsd implement it (forward and reverse). */

export * from './address-form.ts';
export * from './srs.ts';
