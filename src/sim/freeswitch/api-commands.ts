/**
 * The `api` commands the simulated FreeSWITCH answers on both kinds of connection (status,
 * global_*, xml_locate, sofia status gateway, uuid_*), and `bgapi originate` to a subscriber.
 */
import { randomUUID } from 'node:crypto';
import { freeswitchContextXml } from '../shipped-dialplan.js';
import { callerExit, type SimDial } from '../call-model.js';
import { fsSeparateString, originateApp, parseDialString, socketMode, splitApiArgs } from './wire.js';
import { BREAKABLE } from './channel-apps.js';
import { ReferHandling } from './refer.js';

export abstract class ApiCommands extends ReferHandling {
  protected api(line: string): string {
    const [command = '', ...args] = line.split(' ').filter((a) => a !== '');
    const ch = args[0] ? this.channels.get(args[0]) : undefined;
    const live = ch && ch.state !== 'hungup' ? ch : undefined;
    const noChannel = '-ERR No such channel!\n';
    switch (command) {
      case 'status':
        return `UP 0 years, 0 days, 0 hours, 1 minute, 0 seconds, 0 milliseconds, 0 microseconds\nFreeSWITCH (Version 1.10.12-release  64bit) is ready\n${this.channels.size} session(s) since startup\n`;
      case 'global_setvar': {
        const [name = '', ...value] = args.join(' ').split('=');
        this.globals.set(name.trim(), value.join('=').trim());
        return '+OK';
      }
      case 'global_getvar': return this.globals.get(args[0] ?? '') ?? '-ERR no reply\n';
      case 'xml_locate': {
        // `xml_locate dialplan context name <name>`: the context's XML, or this (FreeSWITCH 1.10.12).
        const name = args[0] === 'dialplan' && args[1] === 'context' && args[2] === 'name' ? args[3] ?? '' : '';
        if (!this.dialplanContexts.has(name)) return "can't find anything\n";
        const xml = freeswitchContextXml(name) ?? `<context name="${name}">\n</context>\n`;
        return name === 'twin-after-socket' && !this.afterSocketHasBotFailed ? xml.replace(/<extension name="bot_failed">[\s\S]*?<\/extension>/, '') : xml;
      }
      case 'sofia': return this.sofia(args);
      case 'uuid_getvar':
        if (!live) return noChannel;
        return live.vars.get(args[1] ?? '') ?? '_undef_';
      case 'uuid_setvar':
        if (!live) return noChannel;
        this.setVar(live, args[1] ?? '', args.slice(2).join(' '));
        return '+OK\n';
      case 'uuid_exists': return live ? 'true' : 'false';
      case 'uuid_setvar_multi': {
        if (!live) return noChannel;
        // The line after the uuid, split as FreeSWITCH does (quotes dropped, `\x` unescaped, h1).
        const list = line.slice(line.indexOf(args[0]!) + args[0]!.length + 1);
        for (const pair of fsSeparateString(list, ';')) {
          const [name = '', ...value] = pair.split('=');
          if (name) this.setVar(live, name, value.join('='));
        }
        return '+OK\n';
      }
      case 'uuid_break':
        if (!live) return noChannel;
        // CF_BREAK stays set until an app reads it: a break just before the playback starts ends it at once (h5).
        if (!live.running) live.pendingBreak = true;
        if (live.running && BREAKABLE.has(live.running.app)) {
          live.running.interrupt?.();
          live.running = undefined;
          this.later(live, () => this.runQueue(live), 0);
        }
        return '+OK\n';
      case 'uuid_transfer': {
        if (!live) return args[0] ? noChannel : '-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n';
        const rest = args.slice(1).filter((a) => !a.startsWith('-'));
        const destination = { extension: rest[0] ?? '', context: rest[2] ?? 'default' };
        // A static socket holds the caller's thread: the transfer happens when `socket` returns (p9).
        if (live.state === 'socket' && live.session?.mode === 'static' && !live.session.closed) live.pendingTransfer = destination;
        else this.later(live, () => this.transfer(live, destination.extension, destination.context), 0);
        return '+OK\n';
      }
      case 'uuid_kill':
        if (!args[0]) return '-USAGE: <uuid> [cause]\n';
        if (!live) return noChannel;
        live.pendingHangup = args[1] ?? 'NORMAL_CLEARING'; // the channel is down at once, whatever returns next
        this.later(live, () => this.appHangup(live, live.pendingHangup!), 0);
        return '+OK\n';
      default:
        return `-ERR ${command} Command not found!\n`;
    }
  }

  /**
   * `sofia status gateway <name>`, as mod_sofia.c's cmd_status prints it (FreeSWITCH 1.10): the
   * gateway between two rules, or `Invalid Gateway!`. Other sofia commands are not modelled.
   */
  private sofia(args: string[]): string {
    if (args[0] !== 'status' || args[1] !== 'gateway') return '-ERR the simulator knows only `sofia status gateway <name>`\n';
    if (args.length < 3) return 'Invalid Syntax!\n';
    const name = args[2]!;
    const proxy = this.gateways.get(name);
    if (proxy === undefined) return 'Invalid Gateway!\n';
    const rule = '='.repeat(97);
    const row = (key: string, value: string | number) => `${key}\t${value}\n`;
    return `${rule}\n${row('Name    ', name)}${row('Profile ', 'external')}${row('Scheme  ', 'Digest')}${row('Realm   ', proxy)}`
      + `${row('Username', 'twin')}${row('Password', 'no')}${row('From    ', `<sip:twin@${proxy}>`)}${row('Contact ', `<sip:gw+${name}@127.0.0.1:5080;transport=udp;gw=${name}>`)}`
      + `${row('Exten   ', 'twin')}${row('To      ', `sip:twin@${proxy}`)}${row('Proxy   ', `sip:${proxy}`)}${row('Context ', 'public')}`
      + `${row('Expires ', '3600')}${row('Freq    ', 3600)}${row('Ping    ', 0)}${row('PingFreq', 0)}${row('PingState', '0/0/0')}`
      + `${row('State   ', 'NOREG')}${row('Status  ', 'UP')}${row('CallsIN ', 0)}${row('CallsOUT', 0)}${rule}\n`;
  }

  protected backgroundJob(jobUuid: string, line: string): void {
    const [command = '', ...rest] = line.split(' ');
    if (command !== 'originate') return this.finishJob(jobUuid, command, rest.join(' '), this.api(line));
    this.originate(jobUuid, rest.join(' '));
  }

  /**
   * `originate {vars}<dial> &socket(host:port async full)`: the subscriber answers or fails as
   * subscriberBehaviour says. Answered, the channel connects to the socket target like a dialplan
   * call; the job's body is `+OK <uuid>` after the answer, or `-ERR <CAUSE>` (fixture d2).
   */
  private originate(jobUuid: string, arg: string): void {
    const [aleg = '', exten = ''] = splitApiArgs(arg);
    const { vars, endpoint } = parseDialString(aleg);
    const app = originateApp(exten);
    const socketArg = app?.app === 'socket' ? /^([^:\s]+):(\d+)/.exec(app.arg) : null;
    const uuid = vars.get('origination_uuid') ?? randomUUID();
    const to = endpoint.split('/').pop() ?? '';
    const from = vars.get('origination_caller_id_number') ?? '0000000000';
    const { left, settle: finishDial } = callerExit();
    const fail = (cause: string) => () => {
      this.finishJob(jobUuid, 'originate', arg, `-ERR ${cause}\n`);
      finishDial({ kind: 'hungup-by-caller', vars: {} });
    };
    const socketTarget = socketArg ? `${socketArg[1]}:${socketArg[2]}` : undefined;
    const dial: SimDial = { id: uuid, to, from, socketTarget, left, hangup: () => {} };
    this.dials.push(dial);
    if (!socketArg) return this.later0(fail('INVALID_GATEWAY'), 1);
    const b = this.subscriberBehaviour(to);
    switch (b.kind) {
      case 'busy': return this.later0(fail('USER_BUSY'), b.afterMs ?? 5);
      case 'unavailable': return this.later0(fail('NORMAL_TEMPORARY_FAILURE'), b.afterMs ?? 5);
      case 'no-answer': return this.later0(fail('NO_ANSWER'), Number(vars.get('originate_timeout') ?? '60') * 1000);
      case 'answer':
        return this.later0(() => {
          const call = this.openChannel(uuid, { name: vars.get('origination_caller_id_name') ?? from, number: from }, to, vars,
            { host: socketArg[1]!, port: Number(socketArg[2]), mode: socketMode(app!.arg) }, true, true);
          Object.assign(dial, { left: call.left, hangup: call.hangup });
          void call.left.then(finishDial);
          this.finishJob(jobUuid, 'originate', arg, `+OK ${uuid}\n`);
        }, b.afterMs ?? 5);
    }
  }
}
