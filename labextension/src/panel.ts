import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Poll } from '@lumino/polling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { ApiError, requestAPI } from './api';
import { formatClock, h } from './dom';
import {
  IBackup,
  IClusters,
  IClusterStatus,
  IJobs,
  INodes,
  IPlotEntry,
  IPlots,
  IProgress,
  ISessions
} from './payloads';
import {
  button,
  IActions,
  renderBackup,
  renderCluster,
  renderJobs,
  renderPlots,
  renderRunning,
  renderSessions
} from './render';

/** What the panel needs from the application. */
export interface IHailPanelOptions {
  /** The notebook directory whose plots/ the gallery shows ('' = the Jupyter root). */
  currentDir: () => string;
  /** Open a plot in a main-area tab. */
  openPlot: (dir: string, plot: IPlotEntry) => void;
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
  private readonly actions: IActions = {
    openPlot: (dir, plot) => this.options.openPlot(dir, plot),
    deleteSession: (id, name) => void this.deleteSession(id, name),
    sync: action => void this.sync(action),
    copy: text => void navigator.clipboard.writeText(text)
  };

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
      button('Refresh', 'refresh', () => void this.refresh())
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
        this.bodies.running.querySelector('.jp-HailStatement, .jp-HailTransfer')
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

  private render(section: Section, data: unknown): Node[] {
    switch (section) {
      case 'cluster':
        return renderCluster(
          data as IClusterStatus,
          this.clusters,
          this.nodes,
          this.actions
        );
      case 'sessions':
        return renderSessions(data as ISessions, this.actions);
      case 'running':
        return renderRunning(data as IProgress);
      case 'plots':
        return renderPlots(data as IPlots, this.actions);
      case 'backup':
        return renderBackup(
          data as IBackup,
          this.busyAction !== null,
          this.actions
        );
      case 'jobs':
        return renderJobs(data as IJobs);
    }
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
}
