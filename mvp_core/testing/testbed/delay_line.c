/*
 * delay_line: a packet-level delay line for the WAN testbed, on iptables NFQUEUE (this kernel has
 * no tc netem). iptables hands every packet of a testbed path to a numbered queue; this program
 * holds each one for the path's one-way delay and then lets the kernel deliver it, or drops a
 * fraction of them. The packets never leave the kernel (copy mode META: only their ids come up
 * here), so TCP sees real delay on data and ACKs alike: windows, ACK clocking and loss recovery
 * behave as on a real link, unlike a user-space stream relay.
 *
 * The rules sit on the receiving side's PREROUTING (raw table): there the packet no longer counts
 * against the sender's socket. Held in OUTPUT it would, and TCP Small Queues would throttle the
 * sender to about a millisecond of data in flight.
 *
 * Commands, one per line on stdin; every command is answered with one line on stdout:
 *   set Q DELAY_US LOSS_PPM  bind queue Q (or change it): each packet is released DELAY_US
 *                            microseconds after it arrived, LOSS_PPM per million are dropped
 *                            -> "ok Q" once the kernel accepted the binding, or "error Q <why>"
 *   stats Q                  -> "stats Q PASSED DROPPED HELD" (packets; GSO super-packets count once)
 * End of stdin (the testbed's process is gone) ends the program; held packets are then dropped
 * by the kernel, so a dead delay line is a dead link, never a link without delay.
 *
 * Lossless queues take GSO super-packets whole (NFQA_CFG_F_GSO: one id for up to 64 KiB, cheap).
 * A lossy queue does not: the kernel segments them first, so each dropped packet is one MSS, as
 * on a real link, not a burst of 44.
 *
 * Build: gcc -O2 -Wall -o delay_line delay_line.c (done by delay_line.ts at run time).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_QUEUES 64
/* Packets a queue may hold in the kernel before new ones are dropped (a router's buffer). */
#define QUEUE_MAXLEN 200000
#define SOCKET_BUFFER (64 * 1024 * 1024)

struct held {
  uint32_t id;
  uint64_t due_ns;
};

struct queue {
  int used;
  uint16_t num;
  uint64_t delay_ns;
  uint32_t loss_ppm;
  int gso;                 /* currently configured with NFQA_CFG_F_GSO */
  struct held *ring;
  size_t cap, head, len;   /* ring buffer of held packets, in arrival (= id) order */
  uint64_t passed, dropped;
  uint32_t pending_seq;    /* seq of the config message whose ack answers "set" (0: none) */
};

static struct queue queues[MAX_QUEUES];
static int nl;
static uint32_t seq = 1;
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static char out[1 << 20];  /* verdicts batched into one send per loop */
static size_t out_len;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t next_random(void) { /* xorshift64*: loss needs no cryptography */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 2685821657736338717ull;
}

static struct queue *find_queue(uint16_t num) {
  for (int i = 0; i < MAX_QUEUES; i++)
    if (queues[i].used && queues[i].num == num) return &queues[i];
  return NULL;
}

static void die(const char *what) {
  fprintf(stderr, "delay_line: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void flush_out(void) {
  if (out_len == 0) return;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(nl, out, out_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) die("sendto");
  out_len = 0;
}

/* Starts a netlink message for queue `num` in the output buffer; returns it for attributes. */
static struct nlmsghdr *begin(uint16_t type, uint16_t num, uint16_t flags) {
  if (out_len + 256 > sizeof out) flush_out();
  struct nlmsghdr *h = (struct nlmsghdr *)(out + out_len);
  memset(h, 0, NLMSG_HDRLEN + sizeof(struct nfgenmsg));
  h->nlmsg_len = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
  h->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | type;
  h->nlmsg_flags = NLM_F_REQUEST | flags;
  h->nlmsg_seq = seq++;
  struct nfgenmsg *g = NLMSG_DATA(h);
  g->nfgen_family = AF_UNSPEC;
  g->version = NFNETLINK_V0;
  g->res_id = htons(num);
  return h;
}

static void put_attr(struct nlmsghdr *h, uint16_t type, const void *data, uint16_t len) {
  struct nlattr *a = (struct nlattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
  a->nla_type = type;
  a->nla_len = NLA_HDRLEN + len;
  memcpy((char *)a + NLA_HDRLEN, data, len);
  h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + NLA_ALIGN(a->nla_len);
}

static void end(struct nlmsghdr *h) { out_len += NLMSG_ALIGN(h->nlmsg_len); }

static void verdict(uint16_t num, int batch, uint32_t id, uint32_t what) {
  struct nlmsghdr *h = begin(batch ? NFQNL_MSG_VERDICT_BATCH : NFQNL_MSG_VERDICT, num, 0);
  struct nfqnl_msg_verdict_hdr v = {.verdict = htonl(what), .id = htonl(id)};
  put_attr(h, NFQA_VERDICT_HDR, &v, sizeof v);
  end(h);
}

/* Sends the queue's flags (GSO or not) and, when binding, the bind command; acked. */
static void configure(struct queue *q, int bind) {
  if (bind) {
    struct nlmsghdr *h = begin(NFQNL_MSG_CONFIG, q->num, NLM_F_ACK);
    struct nfqnl_msg_config_cmd cmd = {.command = NFQNL_CFG_CMD_BIND};
    put_attr(h, NFQA_CFG_CMD, &cmd, sizeof cmd);
    end(h);
  }
  struct nlmsghdr *h = begin(NFQNL_MSG_CONFIG, q->num, NLM_F_ACK);
  struct nfqnl_msg_config_params params = {.copy_range = htonl(0), .copy_mode = NFQNL_COPY_META};
  put_attr(h, NFQA_CFG_PARAMS, &params, sizeof params);
  uint32_t maxlen = htonl(QUEUE_MAXLEN);
  put_attr(h, NFQA_CFG_QUEUE_MAXLEN, &maxlen, sizeof maxlen);
  q->gso = q->loss_ppm == 0;
  uint32_t mask = htonl(NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN), flags = htonl(q->gso ? NFQA_CFG_F_GSO : 0);
  put_attr(h, NFQA_CFG_MASK, &mask, sizeof mask);
  put_attr(h, NFQA_CFG_FLAGS, &flags, sizeof flags);
  q->pending_seq = h->nlmsg_seq;
  end(h);
  flush_out();
}

static void push(struct queue *q, uint32_t id, uint64_t due) {
  if (q->len == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 4096;
    struct held *ring = malloc(cap * sizeof *ring);
    if (!ring) die("malloc");
    for (size_t i = 0; i < q->len; i++) ring[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
  }
  q->ring[(q->head + q->len) % q->cap] = (struct held){id, due};
  q->len++;
}

/* Accepts, in one batch verdict per queue, every held packet whose time has come. */
static void release_due(uint64_t now) {
  for (int i = 0; i < MAX_QUEUES; i++) {
    struct queue *q = &queues[i];
    if (!q->used || q->len == 0) continue;
    uint32_t last = 0;
    int any = 0;
    while (q->len > 0 && q->ring[q->head].due_ns <= now) {
      last = q->ring[q->head].id;
      q->head = (q->head + 1) % q->cap;
      q->len--;
      q->passed++;
      any = 1;
    }
    if (any) verdict(q->num, 1, last, NF_ACCEPT);
  }
}

static int64_t next_due(uint64_t now) {
  int64_t best = -1;
  for (int i = 0; i < MAX_QUEUES; i++) {
    struct queue *q = &queues[i];
    if (!q->used || q->len == 0) continue;
    uint64_t due = q->ring[q->head].due_ns;
    int64_t wait = due > now ? (int64_t)(due - now) : 0;
    if (best < 0 || wait < best) best = wait;
  }
  return best;
}

static void on_packet(struct nlmsghdr *h, uint64_t now) {
  struct nfgenmsg *g = NLMSG_DATA(h);
  struct queue *q = find_queue(ntohs(g->res_id));
  uint32_t id = 0;
  int have_id = 0;
  int rest = (int)h->nlmsg_len - NLMSG_HDRLEN - NLMSG_ALIGN(sizeof *g);
  struct nlattr *a = (struct nlattr *)((char *)g + NLMSG_ALIGN(sizeof *g));
  for (; rest >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= rest;
       rest -= NLA_ALIGN(a->nla_len), a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len))) {
    void *data = (char *)a + NLA_HDRLEN;
    if ((a->nla_type & NLA_TYPE_MASK) == NFQA_PACKET_HDR) {
      id = ntohl(((struct nfqnl_msg_packet_hdr *)data)->packet_id);
      have_id = 1;
    }
  }
  if (!have_id || !q) return; /* cannot happen for a bound queue; nothing to answer otherwise */
  if (q->loss_ppm > 0 && next_random() % 1000000 < q->loss_ppm) {
    verdict(q->num, 0, id, NF_DROP);
    q->dropped++;
    return;
  }
  /* Never before the packet ahead of it: the batch verdict releases in id order. */
  uint64_t due = now + q->delay_ns;
  if (q->len > 0) {
    uint64_t tail = q->ring[(q->head + q->len - 1) % q->cap].due_ns;
    if (due < tail) due = tail;
  }
  push(q, id, due);
}

static void on_ack(struct nlmsghdr *h) {
  struct nlmsgerr *e = NLMSG_DATA(h);
  int matched = 0;
  for (int i = 0; i < MAX_QUEUES; i++) {
    struct queue *q = &queues[i];
    if (!q->used || q->pending_seq == 0 || e->msg.nlmsg_seq > q->pending_seq) continue;
    matched = 1;
    if (e->error != 0) {
      printf("error %u %s\n", q->num, strerror(-e->error));
      q->used = 0; /* the next "set" binds again */
      q->pending_seq = 0;
    } else if (e->msg.nlmsg_seq == q->pending_seq) {
      printf("ok %u\n", q->num);
      q->pending_seq = 0;
    }
    fflush(stdout);
  }
  if (!matched && e->error != 0) fprintf(stderr, "delay_line: the kernel refused message %u: %s\n", e->msg.nlmsg_seq, strerror(-e->error));
}

static void read_netlink(void) {
  static char buf[1 << 16];
  /* Bounded, so that a flood of arrivals cannot postpone the releases that are due. */
  for (int n = 0; n < 512; n++) {
    ssize_t got = recv(nl, buf, sizeof buf, MSG_DONTWAIT);
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == ENOBUFS) { /* the kernel dropped packets it could not tell us about: as a full router buffer would */
        fprintf(stderr, "delay_line: netlink buffer overrun\n");
        continue;
      }
      die("recv");
    }
    uint64_t now = now_ns();
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)got); h = NLMSG_NEXT(h, got)) {
      if (h->nlmsg_type == NLMSG_ERROR) on_ack(h);
      else if (h->nlmsg_type == ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) on_packet(h, now);
    }
  }
}

static void command(char *line) {
  unsigned num;
  unsigned long long delay_us;
  unsigned loss_ppm;
  if (sscanf(line, "set %u %llu %u", &num, &delay_us, &loss_ppm) == 3 && num < 65536 && loss_ppm <= 1000000) {
    struct queue *q = find_queue((uint16_t)num);
    int bind = q == NULL;
    if (bind) {
      for (int i = 0; i < MAX_QUEUES && !q; i++)
        if (!queues[i].used) q = &queues[i];
      if (!q) {
        printf("error %u too many queues\n", num);
        fflush(stdout);
        return;
      }
      memset(q, 0, sizeof *q);
      q->used = 1;
      q->num = (uint16_t)num;
    }
    q->delay_ns = delay_us * 1000ull;
    q->loss_ppm = loss_ppm;
    configure(q, bind);
    return;
  }
  if (sscanf(line, "stats %u", &num) == 1) {
    struct queue *q = find_queue((uint16_t)num);
    if (q) printf("stats %u %llu %llu %zu\n", num, (unsigned long long)q->passed, (unsigned long long)q->dropped, q->len);
    else printf("error %u not bound\n", num);
    fflush(stdout);
    return;
  }
  printf("error - unknown command: %s\n", line);
  fflush(stdout);
}

static void read_stdin(void) {
  static char buf[4096];
  static size_t have;
  ssize_t got = read(0, buf + have, sizeof buf - 1 - have);
  if (got == 0) exit(0);
  if (got < 0) {
    if (errno == EINTR || errno == EAGAIN) return;
    die("read stdin");
  }
  have += (size_t)got;
  buf[have] = 0;
  char *start = buf, *nl_at;
  while ((nl_at = strchr(start, '\n'))) {
    *nl_at = 0;
    command(start);
    start = nl_at + 1;
  }
  have = strlen(start);
  memmove(buf, start, have);
}

int main(void) {
  nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (nl < 0) die("socket(NETLINK_NETFILTER)");
  int size = SOCKET_BUFFER;
  if (setsockopt(nl, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0) die("SO_RCVBUFFORCE");
  struct sockaddr_nl local = {.nl_family = AF_NETLINK};
  if (bind(nl, (struct sockaddr *)&local, sizeof local) < 0) die("bind");
  rng ^= (uint64_t)getpid() << 17 ^ now_ns();
  /* The delay line is the network, not a program competing with the ones it carries: a real-time
     priority keeps it on time on a loaded machine, and a 1 ns timer slack keeps its wake-ups exact. */
  prctl(PR_SET_TIMERSLACK, 1UL);
  struct sched_param sp = {.sched_priority = 10};
  int realtime = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
  printf("ready realtime=%d\n", realtime);
  fflush(stdout);
  struct pollfd fds[2] = {{.fd = nl, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
  for (;;) {
    uint64_t now = now_ns();
    release_due(now);
    flush_out();
    int64_t wait = next_due(now_ns());
    struct timespec ts = {.tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000};
    if (ppoll(fds, 2, wait < 0 ? NULL : &ts, NULL) < 0) {
      if (errno == EINTR) continue;
      die("ppoll");
    }
    if (fds[0].revents & POLLIN) read_netlink();
    if (fds[1].revents & (POLLIN | POLLHUP)) read_stdin();
    flush_out();
  }
}
