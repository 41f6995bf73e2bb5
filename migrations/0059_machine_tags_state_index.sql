-- A tag's machines by their stored state (0057's columns): the computers page of one tag with a
-- condition the maintained counts say few of its machines meet reads those tag rows alone, where the
-- walk along the primary key (tag, name, machine_id) read every row of the tag to find them (45 ms
-- for a tag of 100,000 machines and 20 meeting it, at 1,000,000). src/db/machines.ts, tagMachinesMeeting.
CREATE INDEX "machine_tags_tag_state_idx" ON "machine_tags" USING btree ("tag","state","os_type","overdue","machine_id");
