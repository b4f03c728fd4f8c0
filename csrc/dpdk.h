/*
 * The DPDK surface dlisten uses: what bindgen reads (with an allowlist in
 * build.rs), plus the prototypes of the dl_* wrappers in shim.c.
 *
 * rte_config.h first: Debian's libdpdk.pc passes it as `-include rte_config.h`,
 * a flag the pkg-config crate does not forward.
 */
#ifndef DLISTEN_DPDK_H
#define DLISTEN_DPDK_H

#include <rte_config.h>

#include <stdint.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_telemetry.h>
#include <rte_version.h>

/*
 * Non-inline wrappers for DPDK's static-inline fast-path functions and
 * per-lcore variables, which Rust cannot call or read directly.
 */
int dl_rte_errno(void);
unsigned dl_rte_lcore_id(void);
uint64_t dl_rte_rdtsc(void);

uint16_t dl_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                             struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t dl_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                             struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

struct rte_mbuf *dl_rte_pktmbuf_alloc(struct rte_mempool *mp);
int dl_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                              unsigned count);
/*
 * alloc_bulk, then every mbuf made a single-segment packet of len bytes
 * whose data pointer goes to data[i]: a burst of frames in one call.
 * All or nothing: -1 (and nothing allocated) when the pool is short or
 * len does not fit.
 */
int dl_rte_pktmbuf_alloc_frames(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                unsigned count, uint16_t len, void **data);
void dl_rte_pktmbuf_free(struct rte_mbuf *m);
void dl_rte_pktmbuf_reset(struct rte_mbuf *m);
char *dl_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *dl_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *dl_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int dl_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t dl_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t dl_rte_pktmbuf_tailroom(const struct rte_mbuf *m);

/* Field accessors, so rte_mbuf stays opaque to Rust. */
void *dl_rte_pktmbuf_mtod(const struct rte_mbuf *m);
/* mtod and data_len in one call: the per-packet hot path. */
void *dl_rte_pktmbuf_data(const struct rte_mbuf *m, uint16_t *data_len);
uint16_t dl_rte_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t dl_rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t dl_rte_pktmbuf_nb_segs(const struct rte_mbuf *m);
uint16_t dl_rte_pktmbuf_port(const struct rte_mbuf *m);
uint64_t dl_rte_pktmbuf_ol_flags(const struct rte_mbuf *m);
uint32_t dl_rte_pktmbuf_rss_hash(const struct rte_mbuf *m);
/* Single-segment only: returns -1 when len exceeds the room after data_off. */
int dl_rte_pktmbuf_set_len(struct rte_mbuf *m, uint16_t len);
/* Sets the TX ol_flags bits in `flags` (others kept) and l2/l3/l4 lengths. */
void dl_rte_pktmbuf_tx_offload(struct rte_mbuf *m, uint64_t flags,
                               uint8_t l2_len, uint16_t l3_len, uint8_t l4_len);
/* Clears every TX request flag (RTE_MBUF_F_TX_*) and the lengths. */
void dl_rte_pktmbuf_tx_offload_clear(struct rte_mbuf *m);

#endif
