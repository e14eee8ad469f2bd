/* The audio process's cycle in C: the engine (engine.py) as a real-time callback that never
 * enters the interpreter.
 *
 * A Python callback, even alone in its own process, runs the interpreter's own work (objects
 * made and freed, reference counts, the eval loop) at the server's real-time priority on every
 * cycle. This file is the same cycle with none of that: JACK's process thread calls
 * `jack_process` directly (PortAudio's stream callback calls `lsn_begin` and `lsn_mix`
 * through ctypes), and it touches only memory that exists before the stream starts: the
 * shared layout (rt/layout.py) and this mixer's own buffers, allocated once by `lsn_new`.
 *
 * Every number here follows engine.py step by step (the same operations in the same order, in
 * double precision, with no fused multiply-add), so the Python engine stays the readable
 * reference and tests/test_mixer.py compares the two sample by sample.
 *
 * libjack is not linked: `lsn_jack_attach` finds its functions in the copy JACK-Client has
 * already loaded, so building this needs only a C compiler.
 */

#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>

#include "layout.h" /* the shared records, constants and event kinds, generated from rt/structs.py */

#define MAX_CHANNELS 64

/* --- libjack, found at attach time ------------------------------------------------------------ */

typedef uint32_t jack_nframes_t;
typedef struct {
    jack_nframes_t time;
    size_t size;
    uint8_t *buffer;
} jack_midi_event;

typedef struct {
    void *(*port_get_buffer)(void *port, jack_nframes_t frames);
    uint32_t (*midi_get_event_count)(void *buffer);
    int (*midi_event_get)(jack_midi_event *event, void *buffer, uint32_t index);
    jack_nframes_t (*last_frame_time)(const void *client);
    jack_nframes_t (*frames_since_cycle_start)(const void *client);
    int (*set_process_callback)(void *client, int (*callback)(jack_nframes_t, void *), void *arg);
} jack_api;

/* --- the mixer ------------------------------------------------------------------------------- */

typedef struct {
    engine_settings s;
    layout L;
    int64_t voices; /* polyphony + FADE_HEADROOM_VOICES */
    /* Voices: parallel arrays indexed by voice, as engine.py keeps them. */
    const float **sample;
    int64_t *length, *pos, *fade_left, *fade_len, *age;
    double *gain;
    bool *active;
    double *mix, *tmp;
    double limiter_gain;
    /* The loop. */
    double frames_to_step;
    int64_t clock_tick, frames_since_clock; /* -1: no clock heard */
    /* The kit the next hit plays (core/kit.py): a slot of the shared layout, its hits `stride`
       frames apart, layer by layer; `round_robin` counts notes, the next takes the next variant. */
    const float *current;
    int64_t current_length, current_layers, current_variants, current_stride, playing, frames;
    int64_t round_robin;
    /* JACK. */
    jack_api jack;
    void *client, *midi_in, *outs[MAX_CHANNELS];
    int64_t channels;
    jack_nframes_t next_frame_time;
    bool clock_known;
    int64_t notes_before; /* stats->notes when the cycle began: a note since pins the playing slot */
    bool failed; /* this cycle met a record it cannot read: it plays silence (the callback contract) */
} mixer;

/* --- the ring records -------------------------------------------------------------------------- */

/* Single producer, single consumer. The producer writes a record, then publishes it with a
 * release store of `head`; the consumer reads `head` with acquire before the record, and hands
 * the row back with a release store of `tail`, which the producer reads with acquire before it
 * writes over that row. Both processes go through these functions (rt/layout.py's Ring too),
 * so the order holds on any CPU, arm64 included. */

static const double *ring_peek(ring_index *index, const double *records, int64_t capacity) {
    int64_t tail = atomic_load_explicit(&index->tail, memory_order_relaxed); /* ours: we are its only writer */
    if (tail == atomic_load_explicit(&index->head, memory_order_acquire)) return NULL;
    return records + (tail % capacity) * RECORD_WIDTH;
}

static void ring_pop(ring_index *index) {
    int64_t tail = atomic_load_explicit(&index->tail, memory_order_relaxed);
    atomic_store_explicit(&index->tail, tail + 1, memory_order_release);
}

static bool ring_push(ring_index *index, double *records, int64_t capacity, double a, double b, double c, double d) {
    int64_t head = atomic_load_explicit(&index->head, memory_order_relaxed); /* ours: we are its only writer */
    if (head - atomic_load_explicit(&index->tail, memory_order_acquire) >= capacity) {
        index->dropped += 1;
        return false;
    }
    double *row = records + (head % capacity) * RECORD_WIDTH;
    row[0] = a, row[1] = b, row[2] = c, row[3] = d;
    atomic_store_explicit(&index->head, head + 1, memory_order_release); /* last: the record is whole first */
    return true;
}

/* --- voices (engine.py: _note_on and its helpers) ------------------------------------------- */

static int64_t sounding(const mixer *m) {
    int64_t n = 0;
    for (int64_t v = 0; v < m->voices; v++) n += m->active[v] && !m->fade_left[v];
    return n;
}

static int64_t oldest_sounding(const mixer *m) {
    int64_t best = 0, best_age = -1;
    for (int64_t v = 0; v < m->voices; v++)
        if (m->active[v] && !m->fade_left[v] && (best_age < 0 || m->age[v] < best_age)) best = v, best_age = m->age[v];
    return best;
}

static int64_t free_voice(const mixer *m) {
    for (int64_t v = 0; v < m->voices; v++)
        if (!m->active[v]) return v;
    int64_t best = -1;
    for (int64_t v = 0; v < m->voices; v++)
        if (m->fade_left[v] && (best < 0 || m->fade_left[v] < m->fade_left[best])) best = v;
    return best >= 0 ? best : oldest_sounding(m);
}

static void start_fade(mixer *m, int64_t v, int64_t fade) {
    if (m->active[v] && (m->fade_left[v] == 0 || m->fade_left[v] > fade)) m->fade_left[v] = fade, m->fade_len[v] = fade;
}

static void fade_all(mixer *m, int64_t fade) {
    for (int64_t v = 0; v < m->voices; v++) start_fade(m, v, fade);
}

static void release(mixer *m, int64_t v) {
    m->active[v] = false;
    m->fade_left[v] = 0;
}

static void note_on(mixer *m, int64_t velocity, int64_t offset) {
    shared_stats *stats = m->L.stats;
    if (m->current == NULL || velocity <= 0) return;
    if (m->s.choke) {
        fade_all(m, m->s.steal_fade);
    } else if (sounding(m) >= m->s.polyphony) {
        start_fade(m, oldest_sounding(m), m->s.steal_fade); /* steal with a fade, never a cut */
        stats->stolen += 1;
    }
    int64_t layer = 0;
    if (m->current_layers > 1) {
        layer = m->s.layer_of_velocity[velocity < 127 ? velocity : 127];
        if (layer > m->current_layers - 1) layer = m->current_layers - 1;
        if (layer < 0) layer = 0;
    }
    int64_t hit = layer * m->current_variants + m->round_robin % m->current_variants;
    m->round_robin += 1;
    int64_t v = free_voice(m);
    stats->notes += 1;
    stats->last_velocity = velocity;
    m->sample[v] = m->current + hit * m->current_stride;
    m->length[v] = m->current_length;
    m->pos[v] = offset > 0 ? -offset : 0; /* negative: starts `offset` frames into the coming block */
    m->gain[v] = m->s.velocity_gain[velocity < 127 ? velocity : 127];
    m->fade_left[v] = 0;
    m->age[v] = stats->notes;
    m->active[v] = true;
}

static void loop_hit(mixer *m, int64_t offset) {
    note_on(m, m->s.loop_velocity, offset);
    m->L.stats->loop_hits += 1;
}

static void clock_tick(mixer *m, int64_t offset) {
    shared_stats *stats = m->L.stats;
    m->frames_since_clock = 0;
    if (stats->loop_on && stats->transport_running && m->clock_tick % m->s.ticks_per_step == 0) loop_hit(m, offset);
    m->clock_tick += 1;
}

/* --- events (core/events.py: KINDS, numbered in layout.h, and engine.py's handlers) ---------- */

/* One ring record; false when it holds no event (events.decode would raise). */
static bool handle_record(mixer *m, const double *record) {
    double kind = record[0], a = record[1], b = record[2];
    shared_stats *stats = m->L.stats;
    if (!(kind >= 0 && kind < KINDS && kind == (double)(int64_t)kind) || !(fabs(a) < 1e9) || !(fabs(b) < 1e9))
        return false; /* what no event of events.py encodes to (and no cast below may overflow) */
    switch ((int)kind) {
    case KIND_NOTE_ON: note_on(m, (int64_t)a, (int64_t)b); break;
    case KIND_NOTE_OFF: if (m->s.choke) fade_all(m, m->s.steal_fade); break; /* in one-shot mode the hit rings out */
    case KIND_ALL_SOUND_OFF: fade_all(m, m->s.panic_fade); break;
    case KIND_ALL_NOTES_OFF: fade_all(m, m->s.steal_fade); break;
    case KIND_LOOP: {
        bool on = a < 0 ? !stats->loop_on : a > 0;
        if (on && !stats->loop_on) m->frames_to_step = 0.0; /* own tempo: the first hit comes at once */
        stats->loop_on = on;
        break;
    }
    case KIND_TEMPO: {
        int64_t steps = (int64_t)b;
        if (!(a > 0) || steps < 1) return false;
        m->s.frames_per_step = (double)m->s.sample_rate * 60.0 / (a * (double)steps);
        m->s.ticks_per_step = CLOCK_PPQN / steps > 1 ? CLOCK_PPQN / steps : 1;
        break;
    }
    case KIND_CLOCK: clock_tick(m, (int64_t)a); break;
    case KIND_START: m->clock_tick = 0, stats->transport_running = true; break; /* the next tick is the downbeat */
    case KIND_CONTINUE: stats->transport_running = true; break;
    case KIND_STOP: stats->transport_running = false; break;
    }
    return true;
}

/* rt/routing.py's route_in_cycle: clock, transport and the notes the routes mark are played at their
 * frame; everything else goes back to the main process's router. */
static void handle_midi(mixer *m, const uint8_t *data, size_t size, int64_t offset) {
    if (size == 0 || size > 3) return; /* SysEx never reaches the router from the cycle */
    uint8_t status = data[0];
    if (status >= 0xF8) { /* real-time: clock and transport; active sensing and resets are ignored */
        if (status == 0xF8) clock_tick(m, offset);
        else if (status == 0xFA) handle_record(m, (double[]){KIND_START, 0, 0});
        else if (status == 0xFB) handle_record(m, (double[]){KIND_CONTINUE, 0, 0});
        else if (status == 0xFC) handle_record(m, (double[]){KIND_STOP, 0, 0});
        return;
    }
    const note_routes *routes = m->L.routes;
    uint8_t route = (status & 0xE0) == 0x80 && size == 3 && data[1] <= 127 ? routes->note[data[1]] : ROUTE_MAIN;
    if (route == ROUTE_MAIN) {
        ring_push(m->L.midi_index, m->L.midi, m->L.ring_records, (double)size, data[0], size > 1 ? data[1] : 0,
                  size > 2 ? data[2] : 0);
        return;
    }
    if (routes->channel != ROUTE_OMNI && (status & 0x0F) != routes->channel) return;
    int64_t velocity = (status & 0xF0) == 0x90 ? data[2] : 0;
    if (velocity && (route & ROUTE_LOOP)) handle_record(m, (double[]){KIND_LOOP, -1.0, 0});
    else if (route & ROUTE_PLAY) {
        if (velocity) note_on(m, velocity, offset);
        else if (m->s.choke) fade_all(m, m->s.steal_fade);
    }
}

/* --- rendering (engine.py: render, _run_loop, _mix_voice, _safety) --------------------------- */

static void run_loop(mixer *m, int64_t frames) {
    if (m->frames_since_clock >= 0) {
        m->frames_since_clock += frames;
        if (m->frames_since_clock < m->s.clock_timeout) return; /* following the DAW's clock */
        m->frames_since_clock = -1;
    }
    if (!m->L.stats->loop_on) return;
    while (m->frames_to_step < (double)frames) {
        loop_hit(m, (int64_t)m->frames_to_step);
        m->frames_to_step += m->s.frames_per_step;
    }
    m->frames_to_step -= (double)frames;
}

static void mix_voice(mixer *m, int64_t v, double *mix, int64_t frames) {
    int64_t pos = m->pos[v];
    if (pos < 0) { /* a hit that starts `-pos` frames into this block */
        if (-pos >= frames) {
            m->pos[v] = pos + frames;
            return;
        }
        m->pos[v] = 0;
        mix_voice(m, v, mix - pos, frames + pos);
        return;
    }
    int64_t n = m->length[v] - pos < frames ? m->length[v] - pos : frames;
    if (n <= 0) {
        release(m, v);
        return;
    }
    const float *sample = m->sample[v] + pos;
    double gain = m->gain[v], *tmp = m->tmp;
    for (int64_t i = 0; i < n; i++) tmp[i] = (double)sample[i] * gain;
    int64_t fade_left = m->fade_left[v];
    if (fade_left) {
        /* Linear ramp from the current fade level towards zero over the rest of the fade. */
        if (fade_left < n) n = fade_left;
        double slope = -1.0 / (double)m->fade_len[v], level = (double)fade_left / (double)m->fade_len[v];
        for (int64_t i = 0; i < n; i++) {
            double ramp = (double)i * slope;
            ramp += level;
            tmp[i] *= ramp > 0.0 ? ramp : 0.0;
        }
        m->fade_left[v] = fade_left - n;
        if (fade_left - n <= 0) release(m, v);
    }
    for (int64_t i = 0; i < n; i++) mix[i] += tmp[i];
    m->pos[v] = pos + n;
    if (pos + n >= m->length[v]) release(m, v);
}

static void safety(mixer *m, double *mix, int64_t frames) {
    shared_stats *stats = m->L.stats;
    if (frames == 0) return;
    int64_t peak_at = 0;
    double peak = -1.0;
    bool finite = true;
    for (int64_t i = 0; i < frames; i++) {
        mix[i] *= m->s.master_gain;
        double magnitude = fabs(mix[i]);
        if (!isfinite(magnitude)) finite = false;
        else if (magnitude > peak) peak = magnitude, peak_at = i;
    }
    if (!finite) { /* NaN/Inf anywhere: silence the block */
        for (int64_t i = 0; i < frames; i++) mix[i] = 0.0;
        stats->nonfinite_blocks += 1;
        peak = 0.0;
    }
    double g0 = m->limiter_gain, g1;
    int64_t ramp_end;
    double needed = peak > m->s.ceiling ? m->s.ceiling / peak : 1.0;
    if (needed < g0) {
        g1 = needed, ramp_end = peak_at > 1 ? peak_at : 1; /* reach `needed` exactly at the peak sample */
        stats->limited_blocks += 1;
    } else {
        double released = 1.0 - (1.0 - g0) * pow(m->s.release_coef, (double)frames);
        g1 = needed < released ? needed : released, ramp_end = frames;
    }
    if (g0 != 1.0 || g1 != 1.0) {
        double step = 1.0 / (double)ramp_end;
        for (int64_t i = 0; i < frames; i++) {
            double ramp = (double)i * step;
            ramp = ramp < 1.0 ? ramp : 1.0;
            ramp *= g1 - g0;
            ramp += g0;
            mix[i] *= ramp;
        }
    }
    m->limiter_gain = g1;
    double out_peak = 0.0;
    int64_t over = 0;
    for (int64_t i = 0; i < frames; i++) {
        double magnitude = fabs(mix[i]);
        if (magnitude > out_peak) out_peak = magnitude;
        over += magnitude > m->s.ceiling;
    }
    if (out_peak > m->s.ceiling) { /* the guarantee: what the ramp could not catch is clipped at the ceiling */
        stats->clipped_samples += over;
        for (int64_t i = 0; i < frames; i++) mix[i] = mix[i] > m->s.ceiling ? m->s.ceiling : mix[i] < -m->s.ceiling ? -m->s.ceiling : mix[i];
        out_peak = m->s.ceiling;
    }
    if (out_peak > stats->peak) stats->peak = out_peak;
}

static void render(mixer *m, int64_t frames) {
    double *mix = m->mix;
    for (int64_t i = 0; i < frames; i++) mix[i] = 0.0;
    run_loop(m, frames);
    int64_t voices = 0;
    for (int64_t v = 0; v < m->voices; v++)
        if (m->active[v]) mix_voice(m, v, mix, frames), voices += 1;
    m->L.stats->voices = voices;
    m->L.stats->blocks += 1;
    safety(m, mix, frames);
}

/* --- the cycle (rt/cycle.py's SharedCycle) -------------------------------------------------- */

/* At the cycle's start: the swap to a newly published snare, then the main process's events. */
static void begin(mixer *m) {
    snare_table *table = m->L.snares;
    int64_t published = atomic_load_explicit(&table->published, memory_order_acquire);
    if (published != m->playing && published >= 0 && published < SNARE_SLOTS) {
        /* The kit's shape, clamped so that no hit reads past its slot whatever the producer wrote
           (rt/layout.py's SharedAudio.kit does the same). */
        int64_t layers = table->layers[published] < 1 ? 1 : table->layers[published];
        int64_t variants = table->variants[published] < 1 ? 1 : table->variants[published];
        if (layers > m->L.slot_frames) layers = m->L.slot_frames;
        if (variants > m->L.slot_frames / layers) variants = m->L.slot_frames / layers;
        int64_t room = m->L.slot_frames / (layers * variants);
        int64_t stride = table->stride[published] < 1 ? 1 : table->stride[published] > room ? room : table->stride[published];
        int64_t length = table->length[published];
        m->current = m->L.slots + published * m->L.slot_frames;
        m->current_layers = layers, m->current_variants = variants, m->current_stride = stride;
        m->current_length = length < 0 ? 0 : length > stride ? stride : length;
        m->playing = table->playing = published;
    }
    m->failed = false;
    const double *record;
    while ((record = ring_peek(m->L.events_index, m->L.events, m->L.ring_records)) != NULL) {
        bool ok = handle_record(m, record);
        ring_pop(m->L.events_index);
        if (!ok) { /* the rest waits for the next cycle, as it would after an exception in Python */
            m->failed = true;
            m->L.stats->callback_errors += 1;
            break;
        }
    }
}

/* Mix `frames` into each channel (`outs[c][i * stride]`), in blocks of at most max_block. */
static void mix_period(mixer *m, float **outs, int64_t channels, int64_t stride, int64_t frames) {
    if (m->failed) {
        for (int64_t c = 0; c < channels; c++)
            for (int64_t i = 0; i < frames; i++) outs[c][i * stride] = 0.0f;
        return;
    }
    for (int64_t done = 0; done < frames;) {
        int64_t n = frames - done < m->s.max_block ? frames - done : m->s.max_block;
        render(m, n);
        for (int64_t c = 0; c < channels; c++)
            for (int64_t i = 0; i < n; i++) outs[c][(done + i) * stride] = (float)m->mix[i];
        done += n;
    }
}

static void end(mixer *m, int64_t frames) {
    if (m->L.stats->notes != m->notes_before && m->playing >= 0) /* the slot stays pinned while that note sounds */
        m->L.snares->last_started[m->playing] = m->frames;
    m->frames += frames;
    atomic_store_explicit(&m->L.snares->frames, m->frames, memory_order_release); /* after last_started */
}

/* --- the entry points (rt/clib.py) ------------------------------------------------------------ */

void lsn_free(mixer *m);

mixer *lsn_new(const engine_settings *s, const layout *L) {
    mixer *m = calloc(1, sizeof *m);
    if (m == NULL) return NULL;
    m->s = *s, m->L = *L;
    m->voices = s->polyphony + FADE_HEADROOM_VOICES;
    m->sample = calloc(m->voices, sizeof *m->sample);
    m->length = calloc(m->voices, sizeof(int64_t)), m->pos = calloc(m->voices, sizeof(int64_t));
    m->fade_left = calloc(m->voices, sizeof(int64_t)), m->fade_len = calloc(m->voices, sizeof(int64_t));
    m->age = calloc(m->voices, sizeof(int64_t)), m->gain = calloc(m->voices, sizeof(double));
    m->active = calloc(m->voices, sizeof(bool));
    m->mix = calloc(s->max_block, sizeof(double)), m->tmp = calloc(s->max_block, sizeof(double));
    if (!m->sample || !m->length || !m->pos || !m->fade_left || !m->fade_len || !m->age || !m->gain || !m->active ||
        !m->mix || !m->tmp) {
        lsn_free(m);
        return NULL;
    }
    for (int64_t v = 0; v < m->voices; v++) m->fade_len[v] = 1;
    m->limiter_gain = 1.0;
    m->frames_since_clock = -1;
    m->playing = -1;
    m->frames = L->snares->frames; /* a restarted process continues the frame count its slots refer to */
    return m;
}

void lsn_free(mixer *m) {
    if (m == NULL) return;
    free(m->sample), free(m->length), free(m->pos), free(m->fade_left), free(m->fade_len), free(m->age);
    free(m->gain), free(m->active), free(m->mix), free(m->tmp);
    free(m);
}

/* A cycle from outside JACK (PortAudio's stream, and the tests): `lsn_begin`, then any MIDI read
 * in the cycle (`lsn_midi`), then `lsn_mix` into an interleaved buffer of `channels`. */
void lsn_begin(mixer *m) {
    m->notes_before = m->L.stats->notes;
    begin(m);
}

/* A raw MIDI message read in this cycle at frame `offset`. */
void lsn_midi(mixer *m, const uint8_t *data, int64_t size, int64_t offset) {
    handle_midi(m, data, (size_t)size, offset);
}

void lsn_mix(mixer *m, float *out, int64_t channels, int64_t frames) {
    float *outs[MAX_CHANNELS];
    int64_t filled = channels < MAX_CHANNELS ? channels : MAX_CHANNELS; /* any further channel stays as it was */
    for (int64_t c = 0; c < filled; c++) outs[c] = out + c;
    mix_period(m, outs, filled, channels, frames);
    end(m, frames);
}

static int64_t period_bin(jack_nframes_t position, jack_nframes_t frames) {
    uint64_t bin = (uint64_t)position * 10 / (frames ? frames : 1);
    return bin < CYCLE_HIST_BINS - 1 ? (int64_t)bin : CYCLE_HIST_BINS - 1;
}

/* JACK's process callback: MIDI read in the cycle it arrives in, every output port filled. */
static int jack_process(jack_nframes_t frames, void *arg) {
    mixer *m = arg;
    shared_stats *stats = m->L.stats;
    jack_api *jack = &m->jack;
    jack_nframes_t started = jack->frames_since_cycle_start(m->client);
    stats->cycle_start_hist[period_bin(started, frames)] += 1;
    lsn_begin(m);
    /* Read even in a cycle that plays silence: its notes then sound a period late, never not at all. */
    void *buffer = jack->port_get_buffer(m->midi_in, frames);
    uint32_t count = jack->midi_get_event_count(buffer);
    jack_midi_event event;
    for (uint32_t k = 0; k < count; k++)
        if (jack->midi_event_get(&event, buffer, k) == 0) handle_midi(m, event.buffer, event.size, event.time);
    float *outs[MAX_CHANNELS];
    for (int64_t c = 0; c < m->channels; c++) outs[c] = jack->port_get_buffer(m->outs[c], frames);
    mix_period(m, outs, m->channels, 1, frames);
    end(m, frames);
    /* A cycle that finished after the period's end is ours when it began in time (our work made it
     * late), the machine's when it began late; a cycle that never ran here (the server skipped us,
     * or changed its period, so its clock jumped) is the machine's too. */
    jack_nframes_t now = jack->last_frame_time(m->client), finished = jack->frames_since_cycle_start(m->client);
    stats->cycle_end_hist[period_bin(finished, frames)] += 1;
    if (finished > frames) {
        if ((uint64_t)started * 10 < (uint64_t)frames * LATE_START_TENTHS) stats->own_xruns += 1;
        else stats->late_starts += 1;
    }
    if (m->clock_known && now != m->next_frame_time) stats->skipped_cycles += 1;
    m->next_frame_time = now + frames;
    m->clock_known = true;
    return 0;
}

/* Make `jack_process` the client's process callback (before it is activated), with libjack's
 * functions from the copy loaded as `libjack`. 0 on success; -1 when libjack or one of its
 * functions is not found, -2 when JACK refuses the callback. */
int lsn_jack_attach(mixer *m, const char *libjack, void *client, void *midi_in, void **outs, int64_t channels) {
    void *lib = dlopen(libjack, RTLD_NOW | RTLD_NOLOAD); /* the name JACK-Client loaded it by */
    if (lib == NULL || channels > MAX_CHANNELS) return -1;
    jack_api *jack = &m->jack;
    *(void **)&jack->port_get_buffer = dlsym(lib, "jack_port_get_buffer");
    *(void **)&jack->midi_get_event_count = dlsym(lib, "jack_midi_get_event_count");
    *(void **)&jack->midi_event_get = dlsym(lib, "jack_midi_event_get");
    *(void **)&jack->last_frame_time = dlsym(lib, "jack_last_frame_time");
    *(void **)&jack->frames_since_cycle_start = dlsym(lib, "jack_frames_since_cycle_start");
    *(void **)&jack->set_process_callback = dlsym(lib, "jack_set_process_callback");
    dlclose(lib); /* JACK-Client's own reference keeps it loaded */
    if (!jack->port_get_buffer || !jack->midi_get_event_count || !jack->midi_event_get || !jack->last_frame_time ||
        !jack->frames_since_cycle_start || !jack->set_process_callback)
        return -1;
    m->client = client, m->midi_in = midi_in, m->channels = channels;
    for (int64_t c = 0; c < channels; c++) m->outs[c] = outs[c];
    return jack->set_process_callback(client, jack_process, m) == 0 ? 0 : -2;
}

/* Every shared field's name and byte offset as this build laid it out, for rt/clib.py to compare
 * with rt/structs.py: `names` is "struct.field" joined by newlines; returns the field count. */
#define LSN_NAME(type, field) #type "." #field "\n"
#define LSN_OFFSET(type, field) (int64_t)offsetof(type, field),
static const char field_names[] = LSN_FIELDS(LSN_NAME);
static const int64_t field_offsets[] = {LSN_FIELDS(LSN_OFFSET)};

int64_t lsn_fields(const char **names, const int64_t **offsets) {
    *names = field_names;
    *offsets = field_offsets;
    return (int64_t)(sizeof field_offsets / sizeof field_offsets[0]);
}

/* The rings and the snare table from Python (rt/layout.py), with the same ordering as the cycle. */
bool lsn_ring_push(ring_index *index, double *records, int64_t capacity, double a, double b, double c, double d) {
    return ring_push(index, records, capacity, a, b, c, d);
}

/* Copy the oldest record into `out` (RECORD_WIDTH doubles) before handing its row back; false when empty. */
bool lsn_ring_pop(ring_index *index, const double *records, int64_t capacity, double *out) {
    const double *row = ring_peek(index, records, capacity);
    if (row == NULL) return false;
    for (int k = 0; k < RECORD_WIDTH; k++) out[k] = row[k];
    ring_pop(index);
    return true;
}

void lsn_store_release(_Atomic int64_t *at, int64_t value) { atomic_store_explicit(at, value, memory_order_release); }

int64_t lsn_load_acquire(_Atomic int64_t *at) { return atomic_load_explicit(at, memory_order_acquire); }
