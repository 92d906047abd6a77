/**
 * Recipient expansion: from one address to the final addresses mail for it
 * is delivered to, with the chain of steps that led there.
 *
 * For an address of ours, in this order:
 *   1. its own rules (aliases and forwards, both if both exist);
 *   2. on an alias domain without a rule: user@alias becomes user@primary,
 *      unless the alias domain has a catch-all of its own;
 *   3. the catch-all "@domain" of its domain;
 *   4. none of these: if its domain has a transport, the address is a mailbox
 *      on that host (a final target); otherwise it is unknown (no mailbox
 *      here). An alias listing itself ("keep a copy") ends the same way, as
 *      Postfix' virtual(5) does.
 * An address outside our domains is a final target as it is.
 *
 * Expansion is recursive and deduplicated: an address reached twice (a
 * diamond: two aliases sharing a member) is delivered once, by the first
 * path. A loop (a -> b -> a) and a chain deeper than routing.maxDepth are
 * cut and reported as errors naming the chain; the branches that do resolve
 * still count. Unknown, loop and depth errors never drop a recipient silently:
 * the caller tempfails the RCPT (lookup.ts) or dead-letters the recipient with
 * the reason after acceptance (resolver-service.ts).
 */
import { formatAddress, type ParsedAddress, parseAddress } from './address.ts';
import { ldapGate } from './ldap-gate.ts';
import { plusBase } from './plus-address.ts';
import { isOurDomain, type RoutingRule, type RoutingTable, transportFor } from './routing-table.ts';

export interface ExpandedTarget {
  /** The final address to deliver to. */
  address: string;
  /** The addresses passed on the way, starting with the one expanded (empty when it is its own target). */
  via: string[];
}

/** rejected: a routing.reject entry (message: its text); unavailable: LDAP would decide and cannot (ldap-gate.ts). */
export type ExpansionErrorKind = 'invalid' | 'unknown' | 'loop' | 'depth' | 'rejected' | 'unavailable';

export interface ExpansionError {
  kind: ExpansionErrorKind;
  /** The address where expansion stopped. */
  address: string;
  via: string[];
  /** Operator-facing explanation naming the chain. */
  message: string;
}

export interface Expansion {
  /** The address that was expanded, as given. */
  address: string;
  /** Whether it belongs to one of our domains. */
  ours: boolean;
  targets: ExpandedTarget[];
  errors: ExpansionError[];
  /** Human-readable steps, in order (for `sluice lookup` and logs). */
  trail: string[];
  /** How many alias/forward/catch-all rules applied (0: the address itself decided). */
  rulesApplied: number;
  /** The sources of the rules that applied, each once ("config routing.aliases", ...). */
  sources: string[];
}

export function expandRecipient(table: RoutingTable, address: string, now = Date.now()): Expansion {
  const out: Expansion = {
    address,
    ours: false,
    targets: [],
    errors: [],
    trail: [],
    rulesApplied: 0,
    sources: [],
  };
  const parsed = parseAddress(address);
  if (!parsed) {
    out.errors.push({
      kind: 'invalid',
      address,
      via: [],
      message: `${address}: not an address (user@domain)`,
    });
    out.trail.push(`${address} is not an address of the form user@domain`);
    return out;
  }
  out.ours = isOurDomain(table, parsed.domain);
  // Keys already expanded anywhere in this expansion (dedup), and the keys on the current path (loops).
  const seen = new Set<string>();
  const path = new Set<string>();

  const finalOfOurs = (a: ParsedAddress, shown: string, via: string[]) => {
    const found = transportFor(table, a.key, a.domain);
    if (found) {
      const { name, transport } = found;
      out.targets.push({ address: shown, via });
      const lmtp = transport.lmtp ? ', LMTP' : '';
      out.trail.push(
        `${shown} is a mailbox on the transport for ${name} (${transport.host}:${transport.port}${lmtp})`,
      );
      return;
    }
    const message = `${shown}: no alias, forward or catch-all, and ${a.domain} has no mailbox transport`;
    out.errors.push({ kind: 'unknown', address: shown, via, message });
    out.trail.push(message);
  };

  const visit = (raw: string, via: string[], depth: number): void => {
    const a = parseAddress(raw);
    if (!a) {
      const message = `${raw}: not an address (reached via ${via.join(' -> ')})`;
      out.errors.push({ kind: 'invalid', address: raw, via, message });
      out.trail.push(message);
      return;
    }
    const shown = formatAddress(a);
    if (path.has(a.key)) {
      const message = `alias loop: ${[...via, shown].join(' -> ')} (cut here)`;
      out.errors.push({ kind: 'loop', address: shown, via, message });
      out.trail.push(message);
      return;
    }
    if (seen.has(a.key)) {
      out.trail.push(`${shown} already reached by another path: delivered once`);
      return;
    }
    seen.add(a.key);
    if (!isOurDomain(table, a.domain)) {
      out.targets.push({ address: shown, via });
      out.trail.push(`${shown} is outside our domains`);
      return;
    }

    const base = plusBase(a, table.plusSeparator);
    const rejectText = table.rejects.get(a.key) ?? (base ? table.rejects.get(base.key) : undefined);
    if (rejectText !== undefined) {
      out.errors.push({ kind: 'rejected', address: shown, via, message: rejectText });
      out.trail.push(`${shown} is refused by routing.reject: ${rejectText}`);
      return;
    }
    let rules = table.rules.get(a.key);
    let ruleOwner = shown;
    if (!rules && base && table.rules.has(base.key)) {
      rules = table.rules.get(base.key);
      ruleOwner = `${formatAddress(base)} (plus-addressing for ${shown})`;
    }
    const gate = ldapGate(table, a.domain, rules, now);
    if (gate.decides && !gate.usable) {
      out.errors.push({ kind: 'unavailable', address: shown, via, message: gate.message });
      out.trail.push(`${shown}: the LDAP directory decides, and cannot now: ${gate.message}`);
      return;
    }
    if (gate.decides && gate.usable && !out.sources.includes(gate.source)) out.sources.push(gate.source);
    if (!rules && table.aliasDomains.has(a.domain)) {
      const aliasCatchAll = table.rules.get(`@${a.domain}`);
      if (aliasCatchAll) {
        rules = aliasCatchAll;
        ruleOwner = `catch-all @${a.domain} for ${shown}`;
      } else {
        const canonical = `${a.local}@${table.primary}`;
        out.trail.push(`${a.domain} is an alias domain of ${table.primary}: ${shown} -> ${canonical}`);
        path.add(a.key);
        visit(canonical, [...via, shown], depth);
        path.delete(a.key);
        return;
      }
    }
    if (!rules) {
      const catchAll = table.rules.get(`@${a.domain}`);
      if (catchAll) {
        rules = catchAll;
        ruleOwner = `catch-all @${a.domain} for ${shown}`;
      }
    }
    if (!rules) {
      finalOfOurs(a, shown, via);
      return;
    }

    // RFC 5321 §3.9 leaves alias expansion to the host; routing.maxDepth bounds it.
    if (depth + 1 > table.maxDepth) {
      const message = `alias expansion deeper than routing.maxDepth (${table.maxDepth}) at ${shown}: ${[...via, shown].join(' -> ')} (cut here)`;
      out.errors.push({ kind: 'depth', address: shown, via, message });
      out.trail.push(message);
      return;
    }
    out.rulesApplied += rules.length;
    for (const rule of rules) {
      out.trail.push(describeRule(rule, ruleOwner));
      if (!out.sources.includes(rule.source)) out.sources.push(rule.source);
    }
    const targets = uniqueTargets(rules);
    path.add(a.key);
    for (const target of targets) {
      const t = parseAddress(target);
      if (t && t.key === a.key) {
        out.trail.push(`${shown} lists itself: it keeps a copy`);
        finalOfOurs(a, shown, via);
        continue;
      }
      visit(target, [...via, shown], depth + 1);
    }
    path.delete(a.key);
  };

  visit(address, [], 0);
  return out;
}

function describeRule(rule: RoutingRule, owner: string): string {
  return `${rule.kind} ${owner} -> ${rule.targets.join(', ')} (${rule.source})`;
}

function uniqueTargets(rules: readonly RoutingRule[]): string[] {
  const keys = new Set<string>();
  const out: string[] = [];
  for (const rule of rules) {
    for (const t of rule.targets) {
      const key = parseAddress(t)?.key ?? t;
      if (keys.has(key)) continue;
      keys.add(key);
      out.push(t);
    }
  }
  return out;
}
