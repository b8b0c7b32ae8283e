import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Poll } from '@lumino/polling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  ApiError,
  IBackup,
  IClusterStatus,
  IClusters,
  IJobs,
  INodes,
  IPlot,
  IPlots,
  IProgress,
  ISessions,
  requestAPI
} from './api';
import { formatBytes, formatClock, formatTime, h, safeHref } from './dom';

/** What the panel needs from the application. */
export interface IHailPanelOptions {
  /** The notebook directory whose plots/ the gallery shows ('' = the Jupyter root). */
  currentDir: () => string;
  /** Open a plot in a main-area tab. */
  openPlot: (dir: string, plot: IPlot) => void;
  /** Seconds between refreshes while visible. */
  interval: number;
}

const SECTIONS = [
  'cluster',
  'sessions',
  'running',
  'plots',
  'backup',
  'jobs'
] as const;
type Section = (typeof SECTIONS)[number];
const TITLES: Record<Section, string> = {
  cluster: 'Cluster',
  sessions: 'Sessions',
  running: 'Running',
  plots: 'Plots',
  backup: 'Backup',
  jobs: 'Jobs'
};
/** EMR clusters cost AWS calls: refreshed every this many polls. */
const CLUSTER_EVERY = 20;
/** A section older than this (or three intervals) is marked stale. */
const STALE_AFTER_MS = 10 * 1000;
/** A section's request still unanswered after this long is abandoned (and asked again). */
const REQUEST_TIMEOUT_MS = 20 * 1000;

function errorText(reason: unknown): string {
  if (reason instanceof ApiError) {
    return reason.message;
  }
  return reason instanceof Error ? reason.message : String(reason);
}

/**
 * The "Hail" sidebar: Cluster, Sessions, Running, Plots, Backup, Jobs. Refreshes with a
 * lumino Poll that backs off while the server fails and stands by while the panel or the
 * browser tab is hidden.
 */
export class HailPanel extends Widget {
  readonly poll: Poll;
  private bodies = {} as Record<Section, HTMLElement>;
  private stamps = {} as Record<Section, HTMLElement>;
  /** When each section last had an answer (ms since the epoch), and what it cost. */
  private answered: Partial<Record<Section, number>> = {};
  /** Sections whose request is still out: not asked again, and not waited for by the others. */
  private inflight = new Set<string>();
  private ticks = 0;
  private clusters: IClusters | null = null;
  private nodes: INodes | null = null;
  private busyAction: string | null = null;

  constructor(private options: IHailPanelOptions) {
    super();
    this.id = 'hail-emr-lab-panel';
    this.addClass('jp-HailPanel');
    this.title.caption = 'Hail on EMR';
    this.title.label = 'Hail';
    const header = h(
      'div',
      { class: 'jp-HailPanel-header' },
      h('span', { class: 'jp-HailPanel-title' }, 'Hail on EMR'),
      this.button('Refresh', 'refresh', () => void this.refresh())
    );
    this.node.appendChild(header);
    for (const section of SECTIONS) {
      const body = h('div', { class: 'jp-HailSection-body' }, 'Loading…');
      const stamp = h(
        'span',
        { class: 'jp-HailSection-updated', 'data-field': 'updated' },
        ''
      );
      this.bodies[section] = body;
      this.stamps[section] = stamp;
      this.node.appendChild(
        h(
          'section',
          { class: 'jp-HailSection', 'data-section': section },
          h('h3', { class: 'jp-HailSection-title' }, TITLES[section], stamp),
          body
        )
      );
    }
    this.poll = new Poll({
      auto: true,
      factory: () => this.update_all(),
      frequency: {
        interval: options.interval * 1000,
        backoff: true,
        max: 60 * 1000
      },
      name: 'hail-emr-lab:sidebar',
      standby: () => !this.isVisible || document.hidden
    });
  }

  /** Change the poll interval (from the settings). */
  setInterval(seconds: number): void {
    this.options.interval = seconds;
    this.poll.frequency = {
      interval: seconds * 1000,
      backoff: true,
      max: 60 * 1000
    };
    void this.poll.refresh();
  }

  /** Refresh now. */
  async refresh(): Promise<void> {
    await this.poll.refresh();
    await this.poll.tick;
  }

  dispose(): void {
    this.poll.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.poll.refresh();
  }

  /**
   * One poll. Every section is asked at once and drawn as soon as its own answer lands, so a
   * slow one (the backup status of a big home) never holds the others back; a section whose
   * request is still out is not asked again. The poll waits at most one interval for the
   * answers, then marks what has gone stale. Rejects (so the poll backs off) when every answer
   * of the round failed.
   */
  private async update_all(): Promise<void> {
    const dir = this.options.currentDir();
    const wantClusters = this.ticks % CLUSTER_EVERY === 0;
    this.ticks += 1;
    // A request that hangs is given up, so its section is asked again at a later poll.
    const init = (): RequestInit => ({
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
    });
    const calls: [Section | 'clusters', () => Promise<unknown>][] = [
      ['cluster', () => requestAPI<IClusterStatus>('status', init())],
      ['sessions', () => requestAPI<ISessions>('sessions', init())],
      ['running', () => requestAPI<IProgress>('progress', init())],
      ['plots', () => requestAPI<IPlots>('plots', init(), { dir })],
      ['backup', () => requestAPI<IBackup>('sync', init())],
      ['jobs', () => requestAPI<IJobs>('jobs', init())]
    ];
    if (wantClusters) {
      calls.push(['clusters', () => requestAPI<IClusters>('clusters', init())]);
      requestAPI<INodes>('nodes', init()).then(
        n => (this.nodes = n),
        () => (this.nodes = null)
      );
    }
    const round: Promise<boolean>[] = [];
    for (const [name, call] of calls) {
      if (this.inflight.has(name)) {
        continue;
      }
      this.inflight.add(name);
      const sent = Date.now();
      round.push(
        call()
          .then(
            value => this.landed(name, value, sent),
            reason => this.failed(name, reason)
          )
          .finally(() => this.inflight.delete(name))
      );
    }
    const waitMs = this.options.interval * 1000;
    const results = await Promise.race([
      Promise.all(round),
      new Promise<null>(resolve => setTimeout(() => resolve(null), waitMs))
    ]);
    this.markStale();
    if (results && results.length && results.every(ok => !ok)) {
      throw new Error('the hail-emr-lab server extension did not answer');
    }
  }

  /** Draw one answer; true (for the poll's back-off). */
  private landed(
    name: Section | 'clusters',
    value: unknown,
    sent: number
  ): boolean {
    if (name === 'clusters') {
      this.clusters = value as IClusters;
      return true;
    }
    const now = Date.now();
    this.answered[name] = now;
    this.bodies[name].replaceChildren(...this.render(name, value));
    const cost = (value as { elapsed_ms?: number } | null)?.elapsed_ms;
    this.stamps[name].textContent =
      `updated ${formatClock(now)}` +
      (cost !== undefined ? ` · ${cost} ms` : '');
    this.stamps[name].title =
      `answered ${now - sent} ms after it was asked` +
      (cost !== undefined ? `; the server spent ${cost} ms` : '');
    this.stamps[name].classList.remove('jp-mod-stale');
    this.stamps[name].parentElement?.parentElement?.removeAttribute(
      'data-stale'
    );
    return true;
  }

  private failed(name: Section | 'clusters', reason: unknown): boolean {
    if (name !== 'clusters') {
      this.bodies[name].replaceChildren(
        h('div', { class: 'jp-HailError' }, errorText(reason))
      );
    }
    return false;
  }

  /**
   * A section without a fresh answer says since when; the Running section then shows no
   * statements at all (one listed as running may long have finished).
   */
  private markStale(): void {
    const now = Date.now();
    const limit = Math.max(STALE_AFTER_MS, 3 * this.options.interval * 1000);
    for (const section of SECTIONS) {
      const at = this.answered[section];
      if (at === undefined || now - at <= limit) {
        continue;
      }
      const ago = Math.round((now - at) / 1000);
      const stamp = this.stamps[section];
      stamp.textContent = `updated ${formatClock(at)} · no answer for ${ago} s`;
      stamp.classList.add('jp-mod-stale');
      stamp.parentElement?.parentElement?.setAttribute('data-stale', 'true');
      if (
        section === 'running' &&
        this.bodies.running.querySelector('.jp-HailStatement')
      ) {
        this.bodies.running.replaceChildren(
          h(
            'div',
            { class: 'jp-HailMuted' },
            `No answer from the server for ${ago} s: what is running is unknown.`
          )
        );
      }
    }
  }

  private render(section: Section, data: any): Node[] {
    switch (section) {
      case 'cluster':
        return this.renderCluster(data as IClusterStatus);
      case 'sessions':
        return this.renderSessions(data as ISessions);
      case 'running':
        return this.renderRunning(data as IProgress);
      case 'plots':
        return this.renderPlots(data as IPlots);
      case 'backup':
        return this.renderBackup(data as IBackup);
      case 'jobs':
        return this.renderJobs(data as IJobs);
    }
  }

  private button(
    label: string,
    action: string,
    onClick: () => void,
    disabled = false
  ): HTMLButtonElement {
    const button = h(
      'button',
      { class: 'jp-HailButton jp-mod-styled', 'data-action': action },
      label
    );
    button.disabled = disabled;
    button.addEventListener('click', onClick);
    return button;
  }

  private badge(state: string): HTMLElement {
    return h(
      'span',
      { class: `jp-HailBadge jp-HailBadge-${state.replace(/[^a-z_]/g, '')}` },
      state
    );
  }

  private renderCluster(s: IClusterStatus): Node[] {
    const out: Node[] = [
      h(
        'div',
        { class: 'jp-HailRow' },
        h('span', { class: 'jp-HailLabel' }, 'Endpoint '),
        h('code', { class: 'jp-HailEndpoint' }, s.livy_url || 'not configured'),
        ' ',
        h(
          'span',
          {
            class: `jp-HailReach ${s.reachable ? 'jp-mod-ok' : 'jp-mod-bad'}`,
            'data-reachable': String(s.reachable)
          },
          s.reachable ? `reachable (${s.latency_ms} ms)` : 'not reachable'
        )
      )
    ];
    if (s.livy_url) {
      out.push(
        h(
          'div',
          { class: 'jp-HailMuted' },
          `from ${s.livy_url_source}; session name ${s.session_name ?? ''}`
        )
      );
    }
    if (s.error) {
      out.push(h('div', { class: 'jp-HailError' }, s.error));
    }
    out.push(
      h(
        'div',
        { class: 'jp-HailHint' },
        'Connect from a notebook: ',
        h('code', {}, s.hint)
      )
    );
    if (this.clusters) {
      if (this.clusters.error) {
        out.push(
          h(
            'div',
            { class: 'jp-HailMuted' },
            `EMR clusters: ${this.clusters.error}`
          )
        );
      } else {
        const rows = this.clusters.clusters.map(c =>
          h(
            'li',
            {},
            `${c.name ?? c.Name ?? ''} ${c.id ?? c.cluster_id ?? c.Id ?? ''} `,
            h(
              'span',
              { class: 'jp-HailMuted' },
              String(c.state ?? c.Status?.State ?? '')
            ),
            c.livy_url ? h('code', {}, ` ${c.livy_url}`) : null
          )
        );
        out.push(
          h('div', { class: 'jp-HailLabel' }, `EMR clusters (${rows.length})`),
          h('ul', { class: 'jp-HailList' }, ...rows)
        );
      }
    }
    out.push(...this.renderNodes());
    return out;
  }

  /** The configured cluster's nodes, with a copyable `hail-emr-lab ssm` command for a terminal. */
  private renderNodes(): Node[] {
    const n = this.nodes;
    if (!n || !n.available) {
      return [];
    }
    // A shell only where `hail-emr-lab ssm` opens one (ssm.require_managed): an agent that
    // registered but stopped answering (ConnectionLost, Inactive) is refused like an absent one.
    const shell = (node: INodes['nodes'][number]) =>
      node.managed === true &&
      (!node.ping_status || node.ping_status === 'Online');
    const rows = n.nodes.map(node =>
      h(
        'li',
        {
          class: 'jp-HailNode',
          'data-instance': node.instance_id,
          'data-shell': String(shell(node))
        },
        `${node.instance_id} ${node.group} `,
        h(
          'span',
          { class: 'jp-HailMuted' },
          `${node.state} · ` +
            (!node.managed
              ? 'not managed by SSM: no shell'
              : shell(node)
                ? `SSM ${node.ping_status ?? ''}`.trim()
                : `SSM agent ${node.ping_status}: no shell`)
        ),
        shell(node)
          ? h(
              'div',
              {},
              h('code', { class: 'jp-HailNodeCommand' }, node.terminal_command),
              ' ',
              this.button(
                'Copy',
                'copy-ssm',
                () => void navigator.clipboard.writeText(node.terminal_command)
              )
            )
          : null
      )
    );
    const out: Node[] = [
      h(
        'div',
        { class: 'jp-HailLabel' },
        `Nodes of ${n.cluster_id} (${rows.length}): shell in a terminal`
      ),
      h('ul', { class: 'jp-HailList' }, ...rows)
    ];
    if (!n.nodes.every(shell)) {
      out.push(
        h(
          'div',
          { class: 'jp-HailMuted', 'data-field': 'no-shell' },
          'No shell: the SSM agent is not running or not answering, the instance profile lacks ' +
            'AmazonSSMManagedInstanceCore, or the VPC has no SSM endpoints (hail-emr-lab ssm --node ID says more).'
        )
      );
    }
    return out;
  }

  private renderSessions(data: ISessions): Node[] {
    if (data.error) {
      return [h('div', { class: 'jp-HailError' }, data.error)];
    }
    if (!data.sessions.length) {
      return [
        h(
          'div',
          { class: 'jp-HailMuted' },
          'No sessions on this endpoint. Run %hail connect in a notebook.'
        )
      ];
    }
    return [
      h(
        'ul',
        { class: 'jp-HailList' },
        ...data.sessions.map(s => {
          const ui = safeHref(s.spark_ui_url);
          return h(
            'li',
            {
              class: 'jp-HailSession',
              'data-session-id': String(s.id),
              'data-own': String(s.own)
            },
            h(
              'span',
              { class: 'jp-HailSession-name' },
              `#${s.id} ${s.name ?? '(unnamed)'}`
            ),
            ' ',
            this.badge(s.state),
            s.own ? h('span', { class: 'jp-HailOwn' }, ' yours') : null,
            s.notebook
              ? h(
                  'div',
                  { class: 'jp-HailMuted jp-HailSession-notebook' },
                  `notebook: ${s.notebook}`
                )
              : null,
            ui
              ? h(
                  'a',
                  {
                    href: ui,
                    target: '_blank',
                    rel: 'noopener noreferrer',
                    class: 'jp-HailLink'
                  },
                  'Spark UI'
                )
              : null,
            s.own && s.alive
              ? this.button(
                  'Delete',
                  'delete-session',
                  () => void this.deleteSession(s.id, s.name)
                )
              : null
          );
        })
      )
    ];
  }

  private async deleteSession(id: number, name: string | null): Promise<void> {
    const answer = await showDialog({
      title: `Delete session #${id}?`,
      body: `The session ${name ?? ''} and all its variables on the cluster will be lost.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await requestAPI(`sessions/${id}`, { method: 'DELETE' });
    } catch (error) {
      void showDialog({
        title: 'Could not delete the session',
        body: errorText(error),
        buttons: [Dialog.okButton()]
      });
    }
    await this.refresh();
  }

  private renderRunning(data: IProgress): Node[] {
    if (data.error) {
      return [h('div', { class: 'jp-HailError' }, data.error)];
    }
    const out: Node[] = [];
    for (const session of data.sessions) {
      if (session.error) {
        out.push(
          h(
            'div',
            { class: 'jp-HailError' },
            `#${session.session_id}: ${session.error}`
          )
        );
      }
      for (const st of session.statements) {
        const pct = Math.round(st.progress * 100);
        const bar = h('div', { class: 'jp-HailProgress-fill' });
        bar.style.width = `${pct}%`;
        const jobs = st.jobs.map(job =>
          h(
            'li',
            { class: 'jp-HailJob' },
            `Job ${job.jobId} ${job.status ?? ''}: ${job.numCompletedTasks ?? 0}/${job.numTasks ?? 0} tasks` +
              (job.numActiveTasks ? `, ${job.numActiveTasks} running` : '') +
              (job.numFailedTasks ? `, ${job.numFailedTasks} failed` : ''),
            h(
              'ul',
              {},
              ...job.stages.map(stage =>
                h(
                  'li',
                  { class: 'jp-HailStage' },
                  `Stage ${stage.stageId} ${stage.status ?? ''}: ${stage.numCompleteTasks ?? 0}/${stage.numTasks ?? 0}` +
                    ` ${(stage.name ?? '').slice(0, 60)}`
                )
              )
            )
          )
        );
        out.push(
          h(
            'div',
            {
              class: 'jp-HailStatement',
              'data-statement-id': String(st.id),
              'data-session-id': String(session.session_id)
            },
            h(
              'div',
              { class: 'jp-HailRow' },
              `Session #${session.session_id}, statement ${st.id} `,
              this.badge(st.state)
            ),
            h('code', { class: 'jp-HailCode' }, st.code),
            h(
              'div',
              {
                class: 'jp-HailProgress',
                role: 'progressbar',
                'aria-valuenow': String(pct)
              },
              bar,
              h('span', { class: 'jp-HailProgress-text' }, `${pct}%`)
            ),
            session.spark_error
              ? h('div', { class: 'jp-HailMuted' }, session.spark_error)
              : null,
            jobs.length ? h('ul', { class: 'jp-HailList' }, ...jobs) : null
          )
        );
      }
    }
    return out.length
      ? out
      : [h('div', { class: 'jp-HailMuted' }, 'Nothing running.')];
  }

  private renderPlots(data: IPlots): Node[] {
    const out: Node[] = [
      h('div', { class: 'jp-HailMuted' }, `${data.plots_dir}/`)
    ];
    if (data.message) {
      out.push(h('div', { class: 'jp-HailMuted' }, data.message));
    }
    const tiles = data.plots.map(plot => {
      const tile = h(
        'button',
        {
          class: 'jp-HailPlot',
          'data-plot': plot.file,
          title: plot.remote_path ?? plot.file
        },
        h(
          'span',
          { class: `jp-HailPlot-kind jp-HailPlot-${plot.kind}` },
          plot.kind.toUpperCase()
        ),
        h('span', { class: 'jp-HailPlot-name' }, plot.name),
        h(
          'span',
          { class: 'jp-HailMuted' },
          `${formatBytes(plot.size)} · ${formatTime(plot.time)}`
        )
      );
      tile.addEventListener('click', () =>
        this.options.openPlot(data.dir, plot)
      );
      return tile;
    });
    if (tiles.length) {
      out.push(h('div', { class: 'jp-HailGallery' }, ...tiles));
    }
    return out;
  }

  private renderBackup(data: IBackup): Node[] {
    const out: Node[] = [];
    if (data.error) {
      out.push(h('div', { class: 'jp-HailError' }, data.error));
    }
    const s = data.status;
    if (data.target) {
      out.push(
        h(
          'div',
          { class: 'jp-HailMuted' },
          `s3://${data.target.bucket}/${data.target.prefix}/`
        )
      );
    }
    if (s) {
      out.push(
        h(
          'div',
          { class: 'jp-HailRow', 'data-field': 'last-backup' },
          `Last backup: ${formatTime(s.last_backup)}`
        ),
        h(
          'div',
          { class: 'jp-HailRow', 'data-field': 'pending' },
          `Pending files: ${s.pending_count}`
        )
      );
      if (s.pending.length) {
        out.push(
          h(
            'ul',
            { class: 'jp-HailList jp-HailMuted' },
            ...s.pending.slice(0, 8).map(p => h('li', {}, p))
          )
        );
      }
      if (data.skipped_note) {
        out.push(
          h(
            'div',
            { class: 'jp-HailRow jp-HailMuted', 'data-field': 'skipped' },
            data.skipped_note
          )
        );
      }
      out.push(
        h(
          'div',
          {
            class: `jp-HailRow ${s.conflicts.length ? 'jp-HailWarn' : ''}`,
            'data-field': 'conflicts'
          },
          `Conflicts: ${s.conflicts.length}`
        )
      );
      for (const c of s.conflicts.slice(0, 8)) {
        out.push(
          h(
            'div',
            { class: 'jp-HailWarn' },
            typeof c === 'string' ? c : JSON.stringify(c)
          )
        );
      }
      for (const e of s.errors.slice(0, 5)) {
        out.push(
          h(
            'div',
            { class: 'jp-HailError' },
            typeof e === 'string' ? e : JSON.stringify(e)
          )
        );
      }
    }
    const run = data.run;
    const running =
      run.running || this.busyAction !== null || (s?.running ?? false);
    if (run.action) {
      out.push(
        h(
          'div',
          {
            class: `jp-HailRow ${run.ok === false ? 'jp-HailError' : 'jp-HailMuted'}`,
            'data-field': 'run'
          },
          run.running ? `${run.action} running…` : (run.message ?? '')
        )
      );
    }
    if (data.configured) {
      out.push(
        h(
          'div',
          { class: 'jp-HailButtons' },
          this.button(
            'Back up now',
            'backup',
            () => void this.sync('backup'),
            running
          ),
          this.button(
            'Restore',
            'restore',
            () => void this.sync('restore'),
            running
          )
        )
      );
    }
    return out;
  }

  /** Start a backup or restore (the server runs it in the background). */
  async sync(action: 'backup' | 'restore'): Promise<void> {
    if (action === 'restore') {
      const answer = await showDialog({
        title: 'Restore from S3?',
        body: 'Files changed in S3 are downloaded. Local edits are never overwritten: a differing file is kept as a conflict copy.',
        buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Restore' })]
      });
      if (!answer.button.accept) {
        return;
      }
    }
    this.busyAction = action;
    try {
      await requestAPI('sync', {
        method: 'POST',
        body: JSON.stringify({ action })
      });
    } catch (error) {
      void showDialog({
        title: `Could not start the ${action}`,
        body: errorText(error),
        buttons: [Dialog.okButton()]
      });
    } finally {
      this.busyAction = null;
    }
    await this.refresh();
  }

  private renderJobs(data: IJobs): Node[] {
    if (!data.available || data.error) {
      return [
        h(
          'div',
          { class: 'jp-HailMuted' },
          data.error ?? 'jobs are not available'
        )
      ];
    }
    if (!data.jobs.length) {
      return [
        h(
          'div',
          { class: 'jp-HailMuted' },
          'No jobs submitted from here yet (hail-emr-lab jobs submit).'
        )
      ];
    }
    return [
      h(
        'ul',
        { class: 'jp-HailList' },
        ...data.jobs.map(job =>
          h(
            'li',
            { class: 'jp-HailJobRow' },
            `${job.name ?? job.id ?? ''} `,
            h(
              'span',
              { class: 'jp-HailMuted' },
              `${job.backend ?? ''} ${job.id ?? job.job_id ?? ''} `
            ),
            this.badge(
              String(job.state ?? job.last_state ?? 'unknown').toLowerCase()
            ),
            h(
              'span',
              { class: 'jp-HailMuted' },
              ` ${formatTime(job.submitted ?? job.submitted_at ?? job.time ?? null)}`
            )
          )
        )
      )
    ];
  }
}
